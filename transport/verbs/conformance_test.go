package verbs

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-hpc/parley/transport"
	"github.com/parley-hpc/parley/transport/transporttest"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// fakeWorld makes n transports over one fake fabric, each rank with an
// adapter of its own, as ranks on n hosts.
func fakeWorld(t *testing.T, n int, slots int) []*Transport {
	f := NewFabric()
	ts := make([]*Transport, n)
	for r := range n {
		tr, err := New(Config{Rank: r, JobID: "conf", Secret: secret, Device: f.Open("fake0"), Listen: "127.0.0.1:0",
			Advertise: "127.0.0.1", Bell: transport.NewBell(new(atomic.Uint32)), Slots: slots, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		ts[r] = tr
	}
	return ts
}

// TestConformance runs the transport suite over verbs on the fake
// adapter.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
		var out []transport.Transport
		for _, tr := range fakeWorld(t, n, 0) {
			out = append(out, tr)
		}
		return out
	})
}

// TestConformanceFewCredits runs the suite with four eager buffers per
// peer, so that senders wait for credits all the time: a credit the
// protocol returned too early would reach a peer with no receive posted,
// which the fake adapter fails as an adapter would (receiver not ready).
func TestConformanceFewCredits(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
		var out []transport.Transport
		for _, tr := range fakeWorld(t, n, 4) {
			out = append(out, tr)
		}
		return out
	})
}
