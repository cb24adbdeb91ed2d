package main

import (
	"slices"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

func init() {
	for _, c := range []struct {
		name   string
		defMin int
	}{
		{"allreduce", 4}, {"reduce", 4}, {"reduce_scatter", 4}, {"bcast", 1}, {"barrier", 0},
		{"gather", 1}, {"scatter", 1}, {"allgather", 1}, {"alltoall", 1}, {"allgatherv", 1}, {"alltoallv", 1},
	} {
		name := c.name
		register(&benchmark{name: name, kind: "collective", minRank: 1, defMin: c.defMin,
			run: func(be *bencher) error { return runCollective(be, name) }})
	}
}

// runCollective times one collective call by call: a barrier, then the
// call alone; the latency is each rank's mean per call, averaged over
// ranks (min and max over ranks too). Reductions are float32 Sum;
// gather, scatter, allgather and alltoall move size bytes per rank, and
// so do allgatherv and alltoallv, with equal counts packed in rank order
// (as OSU's osu_allgatherv and osu_alltoallv);
// reduce_scatter reduces a vector of size bytes and leaves each rank its
// block.
func runCollective(be *bencher, name string) error {
	w := be.world
	n := w.Size()
	sizes := be.sizes()
	if name == "barrier" {
		sizes = []int{0}
	}
	maxSize := 0
	for _, s := range sizes {
		maxSize = max(maxSize, s)
	}
	sbuf := make([]byte, maxSize*n+64)
	rbuf := make([]byte, maxSize*n+64)
	for i := range sbuf {
		sbuf[i] = 1
	}
	fs := make([]float32, maxSize/4+1)
	fr := make([]float32, maxSize/4+1)
	for i := range fs {
		fs[i] = float32(w.Rank() + 1)
	}
	for _, size := range sizes {
		iters, warmup := be.counts(size)
		count := size / 4
		var call func() error
		switch name {
		case "barrier":
			call = func() error { return collectives.Barrier(w) }
		case "allreduce":
			call = func() error { return collectives.Allreduce(w, fs[:count], fr[:count], collectives.Sum) }
		case "reduce":
			call = func() error { return collectives.Reduce(w, fs[:count], fr[:count], collectives.Sum, 0) }
		case "reduce_scatter":
			counts := splitCounts(count, n)
			call = func() error {
				return collectives.ReduceScatter(w, fs[:count], fr[:counts[w.Rank()]], counts, collectives.Sum)
			}
		case "bcast":
			call = func() error { return collectives.Bcast(w, sbuf[:size], 0) }
		case "gather":
			call = func() error { return collectives.Gather(w, sbuf[:size], rbuf[:size*n], 0) }
		case "scatter":
			call = func() error { return collectives.Scatter(w, sbuf[:size*n], rbuf[:size], 0) }
		case "allgather":
			call = func() error { return collectives.Allgather(w, sbuf[:size], rbuf[:size*n]) }
		case "alltoall":
			call = func() error { return collectives.Alltoall(w, sbuf[:size*n], rbuf[:size*n]) }
		case "allgatherv":
			counts := slices.Repeat([]int{size}, n)
			call = func() error { return collectives.Allgatherv(w, sbuf[:size], rbuf[:size*n], counts, nil) }
		case "alltoallv":
			counts := slices.Repeat([]int{size}, n)
			call = func() error {
				return collectives.Alltoallv(w, sbuf[:size*n], counts, nil, rbuf[:size*n], counts, nil)
			}
		}
		var total float64
		for i := 0; i < iters+warmup; i++ {
			if err := collectives.Barrier(w); err != nil {
				return err
			}
			t0 := now()
			if err := call(); err != nil {
				return err
			}
			if dt := now() - t0; i >= warmup {
				total += dt
			}
		}
		if be.o.validate {
			if err := validateCollective(w, name, size, sbuf, rbuf, fr[:count]); err != nil {
				return err
			}
		}
		avg, lo, hi, err := statsOver(w, total/float64(iters))
		if err != nil {
			return err
		}
		be.add(point{Size: size, Value: avg, Min: lo, Max: hi, Iterations: iters})
	}
	return nil
}

func splitCounts(count, n int) []int {
	c := make([]int, n)
	for i := range c {
		c[i] = count / n
		if i < count%n {
			c[i]++
		}
	}
	return c
}

// validateCollective checks the last call's result (-c).
func validateCollective(w *comm.Comm, name string, size int, sbuf, rbuf []byte, fr []float32) error {
	n := w.Size()
	want := float32(n * (n + 1) / 2)
	switch name {
	case "allreduce":
		for i, v := range fr {
			if v != want {
				return errorf("allreduce: element %d is %v, want %v", i, v, want)
			}
		}
	case "allgather", "alltoall", "allgatherv", "alltoallv":
		for i, b := range rbuf[:size*n] {
			if b != 1 {
				return errorf("%s: byte %d is %d, want 1", name, i, b)
			}
		}
	}
	return nil
}
