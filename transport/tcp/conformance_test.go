package tcp

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-hpc/parley/transport"
	"github.com/parley-hpc/parley/transport/transporttest"
)

// TestConformance runs the transport suite over n ranks on loopback.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
		ts := make([]transport.Transport, n)
		for r := range n {
			tr, err := Listen(Config{Rank: r, JobID: "conf", Secret: secret, Listen: "127.0.0.1:0", Advertise: "127.0.0.1",
				Bell: transport.NewBell(new(atomic.Uint32)), DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			ts[r] = tr
		}
		return ts
	})
}
