package shm

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-hpc/parley/transport"
	"github.com/parley-hpc/parley/transport/transporttest"
)

// TestConformance runs the transport suite over n ranks of one host, in
// this process (process_test.go covers ranks in separate processes).
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
		dir := t.TempDir()
		job := fmt.Sprintf("conf%d", time.Now().UnixNano())
		ts := make([]transport.Transport, n)
		for r := range n {
			tr, err := Open(Config{JobID: job, Rank: r, Size: n, LocalRank: r, LocalSize: n, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			ts[r] = tr
		}
		return ts
	})
}
