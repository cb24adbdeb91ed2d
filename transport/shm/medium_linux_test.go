package shm

import (
	"testing"

	"github.com/parley-hpc/parley/internal/linux"
)

// TestMeasureMedium: the probe moves its messages both ways between two
// cpus, intact (it fails if a message arrives with other contents), and
// times each; on one cpu it refuses, as there is nothing to compare. Which
// way wins is the machine's business, not the test's.
func TestMeasureMedium(t *testing.T) {
	cpus, err := linux.Affinity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MeasureMedium(cpus[0], cpus[0]); err == nil {
		t.Error("measuring with both ends on one cpu did not fail")
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
	m, err := MeasureMedium(cpus[0], cpus[1])
	if err != nil {
		t.Fatal(err)
	}
	if m.Chain <= 0 || m.Read <= 0 {
		t.Fatalf("measured %v and %v", m.Chain, m.Read)
	}
	t.Logf("cpus %d and %d: %v (single copy faster: %v)", cpus[0], cpus[1], m, m.ReadWins())
}
