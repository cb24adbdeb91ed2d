package main

import (
	"fmt"
	"io"
	"math"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

// Overlap benchmarks, measured as OSU's osu_iallreduce and osu_ibcast
// measure them: first the pure communication time of the nonblocking
// operation (start, then Wait at once); then the overall time when the
// rank computes for that long between start and Wait, without calling the
// runtime. Overlap is 100 * (1 - (overall - compute) / pure), between 0
// (nothing moved while the rank computed) and 100 (all of it did).
// isend_overlap is the same for one large message from each even rank to
// the next odd one.

func init() {
	register(&benchmark{name: "iallreduce", kind: "overlap", minRank: 2, defMin: 4, run: runOverlap})
	register(&benchmark{name: "ibcast", kind: "overlap", minRank: 2, defMin: 1, run: runOverlap})
	register(&benchmark{name: "isend_overlap", kind: "overlap", minRank: 2, even: true, defMin: 1, run: runOverlap})
}

func runOverlap(be *bencher) error {
	w := be.world
	maxSize := be.o.maxSize
	buf := make([]byte, maxSize+64)
	fs := make([]float32, maxSize/4+1)
	fr := make([]float32, maxSize/4+1)
	for i := range fs {
		fs[i] = float32(w.Rank() + 1)
	}
	peer := w.Rank() ^ 1
	for _, size := range be.sizes() {
		iters, warmup := be.counts(size)
		var start func() *comm.Request
		switch be.b.name {
		case "iallreduce":
			count := size / 4
			start = func() *comm.Request { return collectives.Iallreduce(w, fs[:count], fr[:count], collectives.Sum) }
		case "ibcast":
			start = func() *comm.Request { return collectives.Ibcast(w, buf[:size], 0) }
		case "isend_overlap":
			start = func() *comm.Request {
				if w.Rank()%2 == 0 {
					return w.Isend(buf[:size], peer, 1)
				}
				return w.Irecv(buf[:size], peer, 1)
			}
		}
		measure := func(compute float64) (overall, computed float64, err error) {
			for i := 0; i < iters+warmup; i++ {
				if err := collectives.Barrier(w); err != nil {
					return 0, 0, err
				}
				t0 := now()
				r := start()
				var c float64
				if compute > 0 {
					c = dummyCompute(compute)
				}
				if _, err := r.Wait(); err != nil {
					return 0, 0, err
				}
				if dt := now() - t0; i >= warmup {
					overall += dt
					computed += c
				}
			}
			return overall / float64(iters), computed / float64(iters), nil
		}
		pure, _, err := measure(0)
		if err != nil {
			return err
		}
		// Every rank computes for the same time: the longest pure time.
		pureMax := make([]float64, 1)
		if err := collectives.Allreduce(w, []float64{pure}, pureMax, collectives.Max); err != nil {
			return err
		}
		overall, computed, err := measure(pureMax[0])
		if err != nil {
			return err
		}
		avgOverall, lo, hi, err := statsOver(w, overall)
		if err != nil {
			return err
		}
		avgCompute, _, _, err := statsOver(w, computed)
		if err != nil {
			return err
		}
		avgPure, _, _, err := statsOver(w, pure)
		if err != nil {
			return err
		}
		ov := 100 * (1 - (avgOverall-avgCompute)/avgPure)
		ov = math.Max(0, math.Min(100, ov))
		be.add(point{Size: size, Value: avgOverall, Min: lo, Max: hi, Iterations: iters, Compute: avgCompute, Pure: avgPure, Overlap: ov})
	}
	return nil
}

// dummyCompute spins for about us microseconds of arithmetic without
// calling the runtime (a program's computation), and returns how long it
// took.
func dummyCompute(us float64) float64 {
	t0 := now()
	x := 1.0
	for {
		for i := 0; i < 200; i++ {
			x = x*1.0000001 + 1e-9
		}
		if t := now() - t0; t >= us {
			sink = x
			return t
		}
	}
}

var sink float64

func printOverlap(w io.Writer, r *Result) {
	fmt.Fprintf(w, "%-10s %14s %14s %14s %12s\n", "# Size", "Overall(us)", "Compute(us)", "Pure Comm(us)", "Overlap(%)")
	for _, p := range r.Results {
		fmt.Fprintf(w, "%-10d %14.2f %14.2f %14.2f %12.2f\n", p.Size, p.Value, p.Compute, p.Pure, p.Overlap)
	}
}
