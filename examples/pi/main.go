// Command pi computes pi as the integral of 4/(1+x^2) over [0, 1] with
// the midpoint rule, the intervals dealt out to the ranks in turn, and the
// partial sums added up at rank 0 with Reduce.
//
// It checks itself: the result is within the rule's error of math.Pi,
// and for small n rank 0 computes the same sum serially (the same terms,
// added in another order: equal within 1e-12). It exits non-zero
// otherwise.
//
//	mpirun -np 4 ./pi -n 100000000
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

func main() {
	n := flag.Int("n", 10_000_000, "intervals")
	check := flag.Int("check", 10_000_000, "compare with a serial sum when n is at most this")
	flag.Parse()
	if err := run(*n, *check); err != nil {
		fmt.Fprintln(os.Stderr, "pi:", err)
		os.Exit(1)
	}
}

// partial sums the terms of intervals first, first+step, ...
func partial(n, first, step int) float64 {
	h, sum := 1/float64(n), 0.0
	for i := first; i < n; i += step {
		x := h * (float64(i) + 0.5)
		sum += 4 / (1 + x*x)
	}
	return sum * h
}

func run(n, check int) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	defer comm.Finalize()
	start := time.Now()
	mine := partial(n, world.Rank(), world.Size())
	total := make([]float64, 1)
	if err := collectives.Reduce(world, []float64{mine}, total, collectives.Sum, 0); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if world.Rank() != 0 {
		return nil
	}
	pi := total[0]
	// The midpoint rule's error here is about 1/(6 n^2) (times the second
	// derivative's bound): allow a generous 1/n^2, and rounding.
	if err := math.Abs(pi - math.Pi); err > 1/float64(n)/float64(n)+1e-13*float64(n) {
		return fmt.Errorf("pi = %.15f is %g from math.Pi", pi, err)
	}
	if n <= check {
		if s := partial(n, 0, 1); math.Abs(s-pi) > 1e-12 {
			return fmt.Errorf("pi = %.15f, the serial sum gives %.15f", pi, s)
		}
	}
	fmt.Printf("pi: %.15f (error %.2g) from %d intervals on %d ranks in %.3f s\n", pi, math.Abs(pi-math.Pi), n, world.Size(), elapsed.Seconds())
	return nil
}
