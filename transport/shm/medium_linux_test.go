package shm

import (
	"errors"
	"testing"
	"time"

	"github.com/parley-hpc/parley/internal/linux"
)

// TestMeasureMedium: the probe moves its messages both ways between two
// cpus, intact (it fails if a message arrives with other contents), and
// times each; on one cpu it refuses, as there is nothing to compare; a
// thread it cannot bind fails it at once, never leaving the other thread
// (and the ranks the agent is about to start) waiting. Which way wins is
// the machine's business, not the test's.
func TestMeasureMedium(t *testing.T) {
	cpus, err := linux.Affinity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MeasureMedium(cpus[0], cpus[0]); err == nil {
		t.Error("measuring with both ends on one cpu did not fail")
	}
	for _, pair := range [][2]int{{1 << 20, cpus[0]}, {cpus[0], 1 << 20}} {
		if _, err := MeasureMedium(pair[0], pair[1]); err == nil {
			t.Errorf("measuring from cpu %d to %d did not fail", pair[0], pair[1])
		}
	}
	if len(cpus) < 2 {
		t.Skipf("one cpu (%v): nothing to measure between", cpus)
	}
	if err := linux.ProbeReadRemote(); err != nil {
		if _, err := MeasureMedium(cpus[0], cpus[1]); err == nil {
			t.Error("the kernel refuses process_vm_readv, yet the measure succeeded")
		}
		t.Skipf("process_vm_readv refused: %v", err)
	}
	// Other test binaries may hold a cpu (go test runs packages at once):
	// a round that takes too long is ErrBusyCPU, and a few tries get one
	// where both cpus are free.
	m, err := MeasureMedium(cpus[0], cpus[1])
	for try := 1; errors.Is(err, ErrBusyCPU) && try < 10; try++ {
		time.Sleep(100 * time.Millisecond)
		m, err = MeasureMedium(cpus[0], cpus[1])
	}
	if errors.Is(err, ErrBusyCPU) {
		t.Skipf("cpus %d and %d stayed busy for 10 tries: %v", cpus[0], cpus[1], err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if m.Chain <= 0 || m.Read <= 0 {
		t.Fatalf("measured %v and %v", m.Chain, m.Read)
	}
	t.Logf("cpus %d and %d: %v (single copy faster: %v)", cpus[0], cpus[1], m, m.ReadWins())
}
