package tcp

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parley-hpc/parley/internal/proctest"
	"github.com/parley-hpc/parley/transport"
)

// The test binary doubles as the flooded rank of TestConnectionFlood.
func TestMain(m *testing.M) {
	if os.Getenv("TCPTEST_FLOODED") == "1" {
		os.Exit(floodedRank())
	}
	os.Exit(proctest.Run(m))
}

// floodedRank runs rank 0 with a limit of 128 descriptors: it prints its
// address, waits until the flood is on (a line on stdin), then sends one
// frame to rank 1 (at the address on that line), which needs a new
// descriptor, and waits for rank 1's answer.
func floodedRank() int {
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 128, Max: 128})
	var w atomic.Uint32
	tr, err := Listen(Config{Rank: 0, JobID: "job", Secret: secret, Listen: "127.0.0.1:0", Advertise: "127.0.0.1",
		Bell: transport.NewBell(&w), DialTimeout: 20 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer tr.Close()
	fmt.Println(tr.Addr())
	peer, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return 1
	}
	if err := tr.Reach(1, strings.TrimSpace(peer), 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e := &endpoint{t: tr}
	o := op(1, 7, []byte("through the flood"), false)
	tr.Send(1, o)
	deadline := time.Now().Add(20 * time.Second)
	for len(e.frames) == 0 && time.Now().Before(deadline) {
		if _, err := tr.Poll(e); err != nil {
			fmt.Fprintln(os.Stderr, "rank 0:", err)
			return 1
		}
	}
	if o.Failed() || len(e.frames) == 0 {
		fmt.Fprintln(os.Stderr, "rank 0: no answer through the flood")
		return 1
	}
	return 0
}

// TestConnectionFlood: 300 idle connections to a rank's listener, whose
// process may hold 128 descriptors, take at most wire.MaxPending of them
// (each for the shortened handshake deadline): the rank can still connect
// to a peer and exchange a frame. Without the bound the flood took every
// descriptor, and the rank's own connections failed with EMFILE.
func TestConnectionFlood(t *testing.T) {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "TCPTEST_FLOODED=1")
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the flooded rank did not start: %v", err)
	}
	target := strings.TrimSpace(line)
	var flood []net.Conn
	for range 300 {
		c, err := net.Dial("tcp", target)
		if err != nil {
			break // the backlog is full: flooded enough
		}
		flood = append(flood, c)
	}
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond) // let the rank accept what it will
	peer := newEndpoint(t, 1)
	fmt.Fprintln(stdin, peer.t.Addr())
	deadline := time.Now().Add(30 * time.Second)
	for len(peer.frames) == 0 && time.Now().Before(deadline) {
		if _, err := peer.t.Poll(peer); err != nil {
			t.Fatal(err)
		}
	}
	if len(peer.frames) == 0 {
		t.Fatal("no frame from the flooded rank")
	}
	if err := peer.t.Reach(0, target, 0); err != nil {
		t.Fatal(err)
	}
	peer.t.Send(0, op(1, 8, []byte("answer"), false))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the flooded rank failed: %v", err)
			}
			return
		case <-time.After(time.Millisecond):
			peer.t.Poll(peer)
		}
	}
}
