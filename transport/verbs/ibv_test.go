package verbs

import (
	"errors"
	"os"
	"strings"
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

// TestPortDown: an adapter whose ports are all down is refused at New,
// naming the adapter and ErrPortDown (what --transport verbs reports).
func TestPortDown(t *testing.T) {
	d := NewFabric().Open("mlx5_9")
	d.PortDown = true
	_, err := New(Config{Device: d, Listen: "127.0.0.1:0", Advertise: "127.0.0.1"})
	if !errors.Is(err, ErrPortDown) || !strings.Contains(err.Error(), "mlx5_9") {
		t.Fatalf("New on an adapter with its port down: %v", err)
	}
}
