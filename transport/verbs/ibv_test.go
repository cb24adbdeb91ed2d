package verbs

import (
	"errors"
	"os"
	"testing"
)

// TestOpenWithoutAdapter: on a machine without an RDMA adapter (these
// have none), Open fails cleanly, naming what is missing: no device in a
// verbs build, the build tag in any other.
func TestOpenWithoutAdapter(t *testing.T) {
	if _, err := os.Stat("/sys/class/infiniband"); err == nil {
		if ents, _ := os.ReadDir("/sys/class/infiniband"); len(ents) > 0 {
			t.Skipf("this machine has RDMA adapters (%d): not the case tested", len(ents))
		}
	}
	d, err := Open("")
	if d != nil {
		d.Close()
	}
	want := ErrNotBuilt
	if Built {
		want = ErrNoDevice
	}
	if !errors.Is(err, want) {
		t.Fatalf("Open without an adapter: %v, want %v", err, want)
	}
	t.Logf("Open: %v", err)
}
