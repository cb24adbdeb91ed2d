package comm_test

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parley-hpc/parley/comm/commtest"
)

// TestPoliteWaitSharesTheProcessor: a goroutine that waits in an
// oversubscribed rank, where every idle poll yields the core to other
// processes, also lets the rank's other goroutines run. With one P, rank
// 0 waits for a message that rank 1 sends only once a third goroutine has
// been scheduled 100 times. A wait that handed over the P at every 16th
// idle poll gets it in a few milliseconds of CPU; one that never did would
// leave the others to the runtime's preemption, every 10 ms: a second of
// spinning. The measure is the process's CPU time, which other processes
// on the machine do not stretch. It runs in a process of its own, with
// GOMAXPROCS=1 and waits that never go to sleep (PARLEY_DEBUG=yield_us).
// Linux only: elsewhere the wait yields with Gosched alone.
func TestPoliteWaitSharesTheProcessor(t *testing.T) {
	if os.Getenv("COMM_TEST_POLITE") != "1" {
		exe, _ := os.Executable()
		cmd := exec.Command(exe, "-test.run=^TestPoliteWaitSharesTheProcessor$", "-test.v")
		cmd.Env = append(os.Environ(), "COMM_TEST_POLITE=1", "GOMAXPROCS=1", "PARLEY_DEBUG=yield_us=600000000")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestPoliteWaitSharesTheProcessor") {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	ws := commtest.Worlds(t, 2, commtest.Shm) // 2 ranks, 1 P: oversubscribed
	const runs = 100
	var scheduled atomic.Int64
	var stop atomic.Bool
	go func() { // the rank's other work
		for !stop.Load() {
			scheduled.Add(1)
			runtime.Gosched()
		}
	}()
	defer stop.Store(true)
	go func() {
		for scheduled.Load() < runs {
			runtime.Gosched()
		}
		ws[1].Send([]byte("go"), 0, 1)
	}()
	before := cpuTime(t)
	buf := make([]byte, 2)
	if _, err := ws[0].Recv(buf, 1, 1); err != nil {
		t.Fatal(err)
	}
	if spent := cpuTime(t) - before; spent > 200*time.Millisecond {
		t.Fatalf("the wait took %v of CPU time until another goroutine had run %d times: it does not hand over the processor", spent, runs)
	} else {
		t.Logf("%v of CPU time", spent)
	}
}

// cpuTime returns the process's user and system time.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
