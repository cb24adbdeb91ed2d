// Command workers computes a Mandelbrot image with a master and workers:
// rank 0 hands out rows one at a time, each worker computes its row and
// sends it back, and gets the next, so fast workers do more (rows near the
// set cost far more than rows far from it). A rank that is done is told to
// stop.
//
// It shows: dynamic load balancing with AnySource and tags (which message
// is which), Status.Source to answer whoever sent, and a clean end.
//
// It checks itself: rank 0 computes the image serially and compares every
// pixel. It exits non-zero at the first difference. With one rank, rank 0
// does all the rows itself.
//
//	mpirun -np 4 ./workers -w 800 -h 600
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/parley-hpc/parley/comm"
)

// Tags: what a message is.
const (
	tagRow    = 1 // master -> worker: compute this row (one int32)
	tagStop   = 2 // master -> worker: no more rows
	tagResult = 3 // worker -> master: the row's index, then its pixels
)

func main() {
	w := flag.Int("w", 200, "image width")
	h := flag.Int("h", 150, "image height")
	maxIter := flag.Int("iter", 500, "iterations per pixel")
	flag.Parse()
	if err := run(*w, *h, *maxIter); err != nil {
		fmt.Fprintln(os.Stderr, "workers:", err)
		os.Exit(1)
	}
}

// row computes the iteration counts of row y into out.
func row(y, w, h, maxIter int, out []int32) {
	for x := 0; x < w; x++ {
		cr := -2.2 + 3.2*float64(x)/float64(w)
		ci := -1.2 + 2.4*float64(y)/float64(h)
		zr, zi, k := 0.0, 0.0, 0
		for ; k < maxIter && zr*zr+zi*zi <= 4; k++ {
			zr, zi = zr*zr-zi*zi+cr, 2*zr*zi+ci
		}
		out[x] = int32(k)
	}
}

func run(w, h, maxIter int) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	defer comm.Finalize()
	if world.Rank() != 0 {
		return worker(world, w, h, maxIter)
	}
	img := make([]int32, w*h)
	done := make([]int, world.Size())
	if world.Size() == 1 {
		for y := 0; y < h; y++ {
			row(y, w, h, maxIter, img[y*w:(y+1)*w])
		}
		done[0] = h
	} else if err := master(world, w, h, img, done); err != nil {
		return err
	}
	want := make([]int32, w)
	for y := 0; y < h; y++ {
		row(y, w, h, maxIter, want)
		for x := range want {
			if img[y*w+x] != want[x] {
				return fmt.Errorf("pixel (%d, %d) is %d, the serial run gives %d", x, y, img[y*w+x], want[x])
			}
		}
	}
	fmt.Printf("workers: %d x %d image on %d ranks; rows per rank %v\n", w, h, world.Size(), done)
	fmt.Println("workers: every pixel as the serial run computes it")
	return nil
}

// master hands out rows until all are back, then stops every worker.
func master(c *comm.Comm, w, h int, img []int32, done []int) error {
	next := 0
	// Prime every worker with a row (or stop it: more workers than rows).
	for r := 1; r < c.Size(); r++ {
		if err := give(c, r, &next, h); err != nil {
			return err
		}
	}
	buf := make([]int32, w+1)
	for got := 0; got < h; got++ {
		st, err := comm.Recv(c, buf, comm.AnySource, tagResult)
		if err != nil {
			return err
		}
		y := int(buf[0])
		copy(img[y*w:(y+1)*w], buf[1:])
		done[st.Source]++
		if err := give(c, st.Source, &next, h); err != nil {
			return err
		}
	}
	return nil
}

// give sends worker r the next row, or tells it to stop.
func give(c *comm.Comm, r int, next *int, h int) error {
	if *next >= h {
		return c.Send(nil, r, tagStop)
	}
	err := comm.Send(c, []int32{int32(*next)}, r, tagRow)
	*next++
	return err
}

func worker(c *comm.Comm, w, h, maxIter int) error {
	out := make([]int32, w+1)
	for {
		y := make([]int32, 1)
		st, err := comm.Recv(c, y, 0, comm.AnyTag)
		if err != nil {
			return err
		}
		if st.Tag == tagStop {
			return nil
		}
		out[0] = y[0]
		row(int(y[0]), w, h, maxIter, out[1:])
		if err := comm.Send(c, out, 0, tagResult); err != nil {
			return err
		}
	}
}
