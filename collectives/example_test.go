package collectives_test

import (
	"fmt"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

// Every rank contributes a vector, and every rank gets the element-wise
// sum. In a world of one (no mpirun) the sum is the rank's own vector.
func ExampleAllreduce() {
	world, err := comm.Init()
	if err != nil {
		panic(err)
	}
	in := []float64{float64(world.Rank()) + 1, 10}
	out := make([]float64, len(in))
	if err := collectives.Allreduce(world, in, out, collectives.Sum); err != nil {
		panic(err)
	}
	fmt.Println(out)
	// Output: [1 10]
}

// A reduction over a struct: UserOp combines whole elements.
func ExampleUserOp() {
	type stats struct {
		Sum float64
		N   int64
	}
	merge := collectives.UserOp(func(inout, in []stats) {
		for i := range inout {
			inout[i].Sum += in[i].Sum
			inout[i].N += in[i].N
		}
	}, true)
	world, _ := comm.Init()
	out := make([]stats, 1)
	if err := collectives.Allreduce(world, []stats{{Sum: 2.5, N: 1}}, out, merge); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", out[0])
	// Output: {Sum:2.5 N:1}
}
