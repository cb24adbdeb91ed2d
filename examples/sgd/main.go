// Command sgd trains a logistic regression by data-parallel gradient
// descent: each rank holds a shard of the samples, computes the gradient
// of its shard, and the ranks sum their gradients with Allreduce, so every
// rank takes the same step.
//
// It shows: Allreduce of a vector (the gradient and the loss together),
// and that it gives every rank bit-identical results, so the ranks' models
// never drift apart.
//
// It checks itself: the weights are compared bit for bit across the ranks
// (gathered at rank 0), and rank 0 trains the same model serially on all
// the samples: the weights must agree to 1e-9 (summing in another order
// changes the last bits, not more). It exits non-zero otherwise.
//
//	mpirun -np 4 ./sgd -n 20000 -epochs 50
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

func main() {
	n := flag.Int("n", 2000, "samples per rank")
	dim := flag.Int("dim", 8, "features")
	epochs := flag.Int("epochs", 30, "passes over the data (full-batch steps)")
	rate := flag.Float64("rate", 0.5, "learning rate")
	flag.Parse()
	if err := run(*n, *dim, *epochs, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "sgd:", err)
		os.Exit(1)
	}
}

// sample i of the data set, the same on any rank: features and a label
// drawn from a fixed "true" model with noise.
func sample(i, dim int) ([]float64, float64) {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	x := make([]float64, dim)
	z := 0.3
	for j := range x {
		x[j] = rng.NormFloat64()
		z += x[j] * float64(j%3-1)
	}
	y := 0.0
	if z+0.5*rng.NormFloat64() > 0 {
		y = 1
	}
	return x, y
}

// gradient adds the gradient of the log loss over samples [lo, hi) to g
// (the last entry is the bias) and returns the loss.
func gradient(w []float64, lo, hi, dim int, g []float64) float64 {
	loss := 0.0
	for i := lo; i < hi; i++ {
		x, y := sample(i, dim)
		z := w[dim]
		for j, v := range x {
			z += w[j] * v
		}
		p := 1 / (1 + math.Exp(-z))
		for j, v := range x {
			g[j] += (p - y) * v
		}
		g[dim] += p - y
		loss -= y*math.Log(p+1e-12) + (1-y)*math.Log(1-p+1e-12)
	}
	return loss
}

func run(n, dim, epochs int, rate float64) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	defer comm.Finalize()
	rank, p := world.Rank(), world.Size()
	total := n * p
	w := make([]float64, dim+1)
	var loss float64
	for range epochs {
		// The gradient and the loss of this shard, summed over the ranks in
		// one Allreduce.
		local := make([]float64, dim+2)
		local[dim+1] = gradient(w, rank*n, (rank+1)*n, dim, local)
		sum := make([]float64, dim+2)
		if err := collectives.Allreduce(world, local, sum, collectives.Sum); err != nil {
			return err
		}
		for j := 0; j <= dim; j++ {
			w[j] -= rate * sum[j] / float64(total)
		}
		loss = sum[dim+1] / float64(total)
	}

	// Every rank's model, bit for bit.
	all := make([]float64, (dim+1)*p)
	if err := collectives.Gather(world, w, all, 0); err != nil {
		return err
	}
	if rank != 0 {
		return nil
	}
	for r := 1; r < p; r++ {
		for j := 0; j <= dim; j++ {
			if math.Float64bits(all[r*(dim+1)+j]) != math.Float64bits(w[j]) {
				return fmt.Errorf("rank %d's weight %d is %v, rank 0's %v: the models drifted apart", r, j, all[r*(dim+1)+j], w[j])
			}
		}
	}
	// The same training, serially.
	ws := make([]float64, dim+1)
	for range epochs {
		g := make([]float64, dim+1)
		gradient(ws, 0, total, dim, g)
		for j := range ws {
			ws[j] -= rate * g[j] / float64(total)
		}
	}
	for j := range ws {
		if math.Abs(ws[j]-w[j]) > 1e-9*max(1, math.Abs(ws[j])) {
			return fmt.Errorf("weight %d is %v, the serial run gives %v", j, w[j], ws[j])
		}
	}
	fmt.Printf("sgd: %d samples on %d ranks, %d epochs: loss %.4f, weights %.3f...\n", total, p, epochs, loss, w[:min(3, dim)])
	fmt.Println("sgd: identical weights on every rank, equal to the serial run's within 1e-9")
	return nil
}
