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
// allocates nothing on any rank (AllocsPerRun counts the process, every
// rank of an in-process world): each allocation was a tenth of the call's
// cost at 2 ranks. On 4 ranks the direct algorithms hold up to six
// requests at once (Allgather, Alltoall, ReduceScatter), which the
// engine's spares cover.
func TestSmallCollectivesAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, size := range []int{2, 4} {
		ws := commtest.Worlds(t, size, commtest.Shm)
		in, out, all := make([]float32, size), make([]float32, size), make([]float32, size*size)
		a2a := make([]float32, size)
		holes := make([]int, size) // rank 0's block is the whole vector
		holes[0] = 1
		for _, c := range []struct {
			name string
			f    func(c *comm.Comm) error
		}{
			{"allreduce", func(c *comm.Comm) error { return collectives.Allreduce(c, in, out, collectives.Sum) }},
			{"reduce", func(c *comm.Comm) error { return collectives.Reduce(c, in, out, collectives.Sum, 0) }},
			{"bcast", func(c *comm.Comm) error { return collectives.Bcast(c, out, 0) }},
			{"allgather", func(c *comm.Comm) error { return collectives.Allgather(c, in, all[:size*len(in)]) }},
			{"barrier", func(c *comm.Comm) error { return collectives.Barrier(c) }},
			{"gather", func(c *comm.Comm) error { return collectives.Gather(c, in, all[:size*len(in)], 0) }},
			{"scatter", func(c *comm.Comm) error { return collectives.Scatter(c, all[:size*len(out)], out, 0) }},
			{"alltoall", func(c *comm.Comm) error { return collectives.Alltoall(c, in, a2a) }},
			{"reduce_scatter", func(c *comm.Comm) error { return collectives.ReduceScatterBlock(c, in, out[:1], collectives.Sum) }},
			{"reduce_scatter, empty blocks", func(c *comm.Comm) error {
				return collectives.ReduceScatter(c, in[:1], out[:holes[c.Rank()]], holes, collectives.Sum)
			}},
		} {
			f := c.f
			if size > 2 {
				// In step: ranks that only send (Reduce, Gather) would
				// otherwise run thousands of calls ahead of the root, whose
				// unexpected messages beyond the 64 records kept for reuse
				// allocate, as any MPI's unexpected queue does.
				f = func(cm *comm.Comm) error {
					if err := c.f(cm); err != nil {
						return err
					}
					return collectives.Barrier(cm)
				}
			}
			const runs = 500
			var wg sync.WaitGroup
			for r := 1; r < size; r++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 100 + 1 + runs {
						f(ws[r])
					}
				}()
			}
			for range 100 {
				f(ws[0])
			}
			n := testing.AllocsPerRun(runs, func() { f(ws[0]) })
			wg.Wait()
			if n > 0 {
				t.Errorf("%d ranks, %s: %.2f allocations per call", size, c.name, n)
			}
		}
	}
}

// BenchmarkBegin measures what a collective costs before it sends
// anything: on a world of one rank, a call ends once begun (Allreduce
// also copies in to out). Returning the call by value through the layers
// that begin it once took half of a Barrier's time here.
func BenchmarkBegin(b *testing.B) {
	ws := commtest.Worlds(b, 1, commtest.Shm)
	in, out := make([]float32, 2), make([]float32, 2)
	b.Run("barrier", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := collectives.Barrier(ws[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("allreduce", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := collectives.Allreduce(ws[0], in, out, collectives.Sum); err != nil {
				b.Fatal(err)
			}
		}
	})
}
