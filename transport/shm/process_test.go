package shm

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-hpc/parley/internal/jobfiles"
	"github.com/parley-hpc/parley/internal/proctest"
	"github.com/parley-hpc/parley/transport"
)

// The test binary doubles as the producer process of TestCrossProcess.
func TestMain(m *testing.M) {
	if os.Getenv("SHMTEST_PRODUCER") == "1" {
		os.Exit(producer())
	}
	os.Exit(proctest.Run(m))
}

const crossFrames = 30000

func producer() int {
	dir, job := os.Getenv("SHMTEST_DIR"), os.Getenv("SHMTEST_JOB")
	pid, _ := strconv.Atoi(os.Getenv("SHMTEST_PID"))
	t, err := Open(Config{JobID: job, Rank: 1, Size: 2, LocalRank: 1, LocalSize: 2, Dir: dir, Slots: 128})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer t.Close()
	if err := t.Reach(0, os.Getenv("SHMTEST_SEG"), pid); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < crossFrames; i++ {
		op := frame(1, uint64(i), payload(rng, t.maxLen), i%7 == 0)
		t.Send(0, op)
		for t.Pending() {
			t.flush() // a closed consumer would end the producer: it does not close here
		}
		if op.Failed() {
			fmt.Fprintln(os.Stderr, "send failed")
			return 1
		}
	}
	return 0
}

// TestCrossProcess sends frames from another process through a real
// mapping: sequence numbers and checksums checked, the small ring lapped
// hundreds of times, sizes at and around every slot boundary.
func TestCrossProcess(t *testing.T) {
	dir := t.TempDir()
	job := fmt.Sprintf("xp%d", time.Now().UnixNano())
	cons, err := Open(Config{JobID: job, Rank: 0, Size: 2, LocalRank: 0, LocalSize: 2, Dir: dir, Slots: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "SHMTEST_PRODUCER=1", "SHMTEST_DIR="+dir, "SHMTEST_JOB="+job,
		"SHMTEST_PID="+strconv.Itoa(os.Getpid()), "SHMTEST_SEG="+cons.Addr())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &checker{next: map[uint32]uint64{}}
	deadline := time.Now().Add(60 * time.Second)
	for c.frames < crossFrames && c.err == nil && time.Now().Before(deadline) {
		if _, err := cons.Poll(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	if c.err != nil || c.frames != crossFrames {
		t.Fatalf("got %d of %d frames: %v", c.frames, crossFrames, c.err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "parley-"+job+"-*-1")); len(left) > 0 {
		t.Errorf("the producer's segment survived its Close: %v", left)
	}
}

func TestAttachChecks(t *testing.T) {
	dir := t.TempDir()
	own, err := Open(Config{JobID: "a", Rank: 0, Size: 2, LocalRank: 0, LocalSize: 2, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	peerT, err := Open(Config{JobID: "a", Rank: 1, Size: 2, LocalRank: 1, LocalSize: 2, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer peerT.Close()
	os.WriteFile(filepath.Join(dir, "parley-junk"), make([]byte, 1<<20), 0o600)
	os.WriteFile(filepath.Join(dir, "parley-short"), []byte("PRLYSHM2"), 0o600)
	os.Symlink(filepath.Join(dir, own.Addr()), filepath.Join(dir, "parley-link"))
	if err := syscall.Mkfifo(filepath.Join(dir, "parley-fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "parley-foreign")
	os.WriteFile(foreign, make([]byte, 1<<20), 0o600)
	if os.Geteuid() == 0 {
		os.Chown(foreign, 65534, 65534) // another user's file
	}
	for _, tc := range []struct {
		name string
		seg  string
		pid  int
	}{
		{"wrong pid", own.Addr(), os.Getpid() + 1},
		{"not a segment", "parley-junk", os.Getpid()},
		{"too short", "parley-short", os.Getpid()},
		{"missing", "parley-nothing-here", os.Getpid()},
		{"path in name", "../x", os.Getpid()},
		{"a link to a segment", "parley-link", os.Getpid()},
		{"a FIFO (must not block)", "parley-fifo", os.Getpid()},
		{"another user's file", "parley-foreign", os.Getpid()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "another user's file" && os.Geteuid() != 0 {
				t.Skip("needs root to give a file to another user")
			}
			if err := peerT.Reach(0, tc.seg, tc.pid); err == nil {
				t.Fatal("attached")
			}
		})
	}
	if err := peerT.Reach(0, own.Addr(), os.Getpid()); err != nil {
		t.Fatal(err)
	}
	op := &transport.SendOp{Header: transport.Header{Len: 3}, Payload: []byte("abc")}
	peerT.Send(0, op)
	if !op.Done() || op.Failed() {
		t.Fatal("send through an attached ring failed")
	}
	if info, _ := os.Stat(filepath.Join(dir, own.Addr())); info.Mode().Perm() != 0o600 {
		t.Errorf("segment mode %v, want 0600", info.Mode().Perm())
	}
}

// TestSweep: the segments of dead jobs go; those of live ones, foreign
// files, other users' files and anything that is not a regular file stay,
// and a FIFO planted among them does not block the sweep.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	dead.Run()
	deadPid := dead.Process.Pid
	mk := func(name string, pid int) {
		if err := jobfiles.Create(dir, name, regionSize(2, 64), pid); err != nil {
			t.Fatal(err)
		}
	}
	mk("parley-deadjob-0", deadPid)
	mk("parley-livejob-0", os.Getpid())
	os.WriteFile(filepath.Join(dir, "parley-foreign"), []byte("not ours"), 0o600)
	syscall.Mkfifo(filepath.Join(dir, "parley-fifo"), 0o600)
	os.Symlink(filepath.Join(dir, "parley-deadjob-0"), filepath.Join(dir, "parley-link"))
	done := make(chan []string, 1)
	go func() { done <- Sweep(dir) }()
	var removed []string
	select {
	case removed = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Sweep blocked (on the FIFO?)")
	}
	if len(removed) != 1 || removed[0] != "parley-deadjob-0" {
		t.Fatalf("swept %v, want only the dead job's segment", removed)
	}
	for _, keep := range []string{"parley-livejob-0", "parley-foreign", "parley-fifo", "parley-link"} {
		if _, err := os.Lstat(filepath.Join(dir, keep)); err != nil {
			t.Errorf("%s was removed", keep)
		}
	}
}

// TestMayPollAcrossClose: MayPoll sees a frame without taking anything,
// and goroutines calling it while the transport closes neither fault nor
// race: after Close it says true (the caller then finds Poll closed), and
// a call in the middle reads the zero pages that replaced the segment.
func TestMayPollAcrossClose(t *testing.T) {
	dir := t.TempDir()
	own, err := Open(Config{JobID: "m", Rank: 0, Size: 2, LocalRank: 0, LocalSize: 2, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	peerT, err := Open(Config{JobID: "m", Rank: 1, Size: 2, LocalRank: 1, LocalSize: 2, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer peerT.Close()
	if own.MayPoll() {
		t.Fatal("MayPoll with nothing sent")
	}
	if err := peerT.Reach(0, own.Addr(), os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if !peerT.TrySend(0, &transport.Header{Len: 3}, []byte("abc")) {
		t.Fatal("TrySend into an empty ring failed")
	}
	if !own.MayPoll() {
		t.Fatal("MayPoll missed a frame")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					own.MayPoll()
				}
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	if err := own.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	close(stop)
	wg.Wait()
	if !own.MayPoll() {
		t.Error("MayPoll after Close = false, want true")
	}
	if n, err := own.Poll(nil); n != 0 || err != nil {
		t.Errorf("Poll after Close = %d, %v", n, err)
	}
}
