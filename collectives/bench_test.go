package collectives_test

import (
	"sync"
	"testing"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// benchPair runs f b.N times on both ranks of an in-process world of two
// over shared memory: the fixed cost of a call, apart from mpirun and
// binding (bench measures those).
func benchPair(b *testing.B, f func(c *comm.Comm) error) {
	ws := commtest.Worlds(b, 2, commtest.Shm)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < b.N; i++ {
			f(ws[1])
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f(ws[0]); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}

func BenchmarkSmall(b *testing.B) {
	in, out, all := make([]float32, 2), make([]float32, 2), make([]float32, 4)
	bytes, got := make([]byte, 8), make([]byte, 8)
	for _, c := range []struct {
		name string
		f    func(c *comm.Comm) error
	}{
		{"sendrecv", func(c *comm.Comm) error {
			_, err := c.Sendrecv(bytes, 1-c.Rank(), 0, got, 1-c.Rank(), 0)
			return err
		}},
		{"allreduce", func(c *comm.Comm) error { return collectives.Allreduce(c, in, out, collectives.Sum) }},
		{"reduce", func(c *comm.Comm) error { return collectives.Reduce(c, in, out, collectives.Sum, 0) }},
		{"bcast", func(c *comm.Comm) error { return collectives.Bcast(c, out, 0) }},
		{"allgather", func(c *comm.Comm) error { return collectives.Allgather(c, in, all) }},
		{"barrier", func(c *comm.Comm) error { return collectives.Barrier(c) }},
	} {
		b.Run(c.name, func(b *testing.B) { benchPair(b, c.f) })
	}
}

// TestSmallCollectivesAllocateNothing: a collective on a short vector
// allocates nothing on either rank (AllocsPerRun counts the process, both
// ranks of an in-process world): each allocation was a tenth of the
// call's cost at 2 ranks.
func TestSmallCollectivesAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	ws := commtest.Worlds(t, 2, commtest.Shm)
	in, out, all := make([]float32, 2), make([]float32, 2), make([]float32, 4)
	for _, c := range []struct {
		name string
		f    func(c *comm.Comm) error
	}{
		{"allreduce", func(c *comm.Comm) error { return collectives.Allreduce(c, in, out, collectives.Sum) }},
		{"reduce", func(c *comm.Comm) error { return collectives.Reduce(c, in, out, collectives.Sum, 0) }},
		{"bcast", func(c *comm.Comm) error { return collectives.Bcast(c, out, 0) }},
		{"allgather", func(c *comm.Comm) error { return collectives.Allgather(c, in, all) }},
		{"barrier", func(c *comm.Comm) error { return collectives.Barrier(c) }},
		{"gather", func(c *comm.Comm) error { return collectives.Gather(c, in, all, 0) }},
		{"scatter", func(c *comm.Comm) error { return collectives.Scatter(c, all, out, 0) }},
	} {
		const runs = 500
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 + 1 + runs {
				c.f(ws[1])
			}
		}()
		for range 100 {
			c.f(ws[0])
		}
		n := testing.AllocsPerRun(runs, func() { c.f(ws[0]) })
		wg.Wait()
		if n > 0 {
			t.Errorf("%s: %.2f allocations per call", c.name, n)
		}
	}
}
