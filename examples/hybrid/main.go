// Command hybrid is the MPI+threads model in Go: a few ranks, each with
// several goroutines. It relaxes the heat equation on a plate cut into
// horizontal slabs, one per rank; inside a rank, goroutines share the
// slab's rows (one per P, GOMAXPROCS of them: mpirun --cpus-per-rank N
// sets it to N).
//
// It shows the overlap of communication with computation: each iteration
// starts the halo exchange (Irecv and Isend of the slab's edge rows), then
// updates the interior rows, which need no halo, while the messages move,
// and only then waits for the halos and updates the two edge rows. With
// spare cores, the runtime's progress goroutine moves large halos during
// the interior update; the per-iteration time spent waiting is printed.
//
// It checks itself: rank 0 gathers the plate and compares it, bit for bit,
// with the same iterations done serially, and exits non-zero at the first
// difference.
//
//	mpirun -np 2 --cpus-per-rank 4 ./hybrid -n 2048 -iters 200
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

func main() {
	n := flag.Int("n", 512, "cells along each side of the plate")
	iters := flag.Int("iters", 100, "iterations")
	workers := flag.Int("workers", 0, "goroutines per rank (default GOMAXPROCS)")
	check := flag.Int("check", 1024, "compare with a serial run when n is at most this")
	flag.Parse()
	if *workers <= 0 {
		*workers = runtime.GOMAXPROCS(0)
	}
	if err := run(*n, *iters, *workers, *check); err != nil {
		fmt.Fprintln(os.Stderr, "hybrid:", err)
		os.Exit(1)
	}
}

const hot = 100.0 // the top edge of the plate

// slab is one rank's rows of the plate, rows x n cells with a halo row
// above and below: row i of the slab is t[(i+1)*n : (i+2)*n].
type slab struct {
	n, rows int
	t, next []float64
}

func (s *slab) row(i int) []float64 { return s.t[(i+1)*s.n : (i+2)*s.n] }

// update computes rows [lo, hi) of next from t (Jacobi: each interior
// cell becomes the mean of its four neighbours; the plate's left and
// right edges stay 0).
func (s *slab) update(lo, hi int) {
	n := s.n
	for i := lo; i < hi; i++ {
		up, mid, down := s.t[i*n:(i+1)*n], s.t[(i+1)*n:(i+2)*n], s.t[(i+2)*n:(i+3)*n]
		out := s.next[(i+1)*n : (i+2)*n]
		out[0], out[n-1] = 0, 0
		for j := 1; j < n-1; j++ {
			out[j] = 0.25 * (up[j] + down[j] + mid[j-1] + mid[j+1])
		}
	}
}

// parallel runs f on [lo, hi) split among w goroutines.
func parallel(lo, hi, w int, f func(lo, hi int)) {
	if hi-lo <= 0 {
		return
	}
	w = min(w, hi-lo)
	var wg sync.WaitGroup
	for k := 0; k < w; k++ {
		a, b := lo+(hi-lo)*k/w, lo+(hi-lo)*(k+1)/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(a, b)
		}()
	}
	wg.Wait()
}

func run(n, iters, workers, check int) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	defer comm.Finalize()
	rank, size := world.Rank(), world.Size()
	if n < 3 || size > n-2 {
		return fmt.Errorf("-n %d: the plate needs at least 3 rows and one interior row per rank (%d ranks)", n, size)
	}
	// Rows 0 and n-1 of the plate are its fixed top and bottom edges; the
	// n-2 rows between them are split among the ranks.
	_, rows := split(n-2, size, rank)
	s := &slab{n: n, rows: rows, t: make([]float64, (rows+2)*n), next: make([]float64, (rows+2)*n)}
	up, down := rank-1, rank+1
	if rank == 0 {
		up = comm.ProcNull
		for j := 1; j < n-1; j++ {
			s.t[j], s.next[j] = hot, hot // the halo above the first rank is the hot edge
		}
	}
	if rank == size-1 {
		down = comm.ProcNull // and below the last, the cold edge: zeros
	}
	var waited time.Duration
	start := time.Now()
	for it := 0; it < iters; it++ {
		reqs := []*comm.Request{
			comm.Irecv(world, s.t[:n], up, 0),
			comm.Irecv(world, s.t[(rows+1)*n:], down, 1),
			comm.Isend(world, s.row(0), up, 1),
			comm.Isend(world, s.row(rows-1), down, 0),
		}
		// The interior rows need no halo: update them while it travels.
		parallel(1, rows-1, workers, s.update)
		w0 := time.Now()
		if _, err := comm.Waitall(reqs...); err != nil {
			return err
		}
		waited += time.Since(w0)
		s.update(0, min(1, rows))
		if rows > 1 {
			s.update(rows-1, rows)
		}
		s.t, s.next = s.next, s.t
	}
	elapsed := time.Since(start)
	// Gather the slabs at rank 0.
	counts := make([]int, size)
	displs := make([]int, size)
	for r := range size {
		f, c := split(n-2, size, r)
		counts[r], displs[r] = c*n, (f+1)*n
	}
	var plate []float64
	if rank == 0 {
		plate = make([]float64, n*n)
	}
	if err := collectives.Gatherv(world, s.t[n:(rows+1)*n], plate, counts, displs, 0); err != nil {
		return err
	}
	mw := make([]float64, 1)
	if err := collectives.Reduce(world, []float64{waited.Seconds()}, mw, collectives.Max, 0); err != nil {
		return err
	}
	maxWait := time.Duration(mw[0] * float64(time.Second))
	if rank != 0 {
		return nil
	}
	fmt.Printf("hybrid: %d x %d plate, %d ranks x %d goroutines, %d iterations: %v (waiting for halos: %v at most)\n",
		n, n, size, workers, iters, elapsed.Round(time.Millisecond), maxWait.Round(time.Microsecond))
	if n > check {
		fmt.Println("hybrid: plate larger than -check; not compared with a serial run")
		return nil
	}
	want := serial(n, iters)
	for i := 1; i < n-1; i++ {
		for j := 0; j < n; j++ {
			if plate[i*n+j] != want[i*n+j] {
				return fmt.Errorf("cell (%d, %d) is %v, the serial run gives %v", i, j, plate[i*n+j], want[i*n+j])
			}
		}
	}
	fmt.Println("hybrid: matches the serial run bit for bit")
	return nil
}

// serial relaxes the whole plate in one goroutine.
func serial(n, iters int) []float64 {
	s := &slab{n: n, rows: n - 2, t: make([]float64, n*n), next: make([]float64, n*n)}
	for j := 1; j < n-1; j++ {
		s.t[j], s.next[j] = hot, hot
	}
	for range iters {
		s.update(0, n-2)
		s.t, s.next = s.next, s.t
	}
	return s.t
}

// split gives each of p parts of n rows its share: the first n%p get one
// more. It returns part k's first row and count.
func split(n, p, k int) (first, count int) {
	q, r := n/p, n%p
	first = k*q + min(k, r)
	count = q
	if k < r {
		count++
	}
	return first, count
}
