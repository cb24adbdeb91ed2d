package comm_test

import (
	"fmt"

	"github.com/parley-hpc/parley/comm"
)

// A rank sends a message and another receives it. Run without mpirun, the
// program is a world of one, and rank 0 talks to itself; under
// "mpirun -np 2" rank 0 would send to rank 1.
func ExampleComm_Send() {
	world, err := comm.Init()
	if err != nil {
		panic(err)
	}
	// A real program also defers comm.Finalize() here.
	dest := (world.Rank() + 1) % world.Size()
	src := (world.Rank() - 1 + world.Size()) % world.Size()
	if err := world.Send([]byte("hello"), dest, 7); err != nil {
		panic(err)
	}
	buf := make([]byte, 64)
	st, err := world.Recv(buf, src, 7)
	if err != nil {
		panic(err)
	}
	fmt.Printf("rank %d got %q from rank %d (tag %d)\n", world.Rank(), buf[:st.Count], st.Source, st.Tag)
	// Output: rank 0 got "hello" from rank 0 (tag 7)
}

// Structs travel as they are, with no encoding: any fixed-size type
// without pointers. Counts are elements.
func ExampleSend() {
	type particle struct {
		Pos, Vel [3]float64
		ID       int64
	}
	world, _ := comm.Init()
	out := []particle{{Pos: [3]float64{1, 2, 3}, ID: 42}}
	if err := comm.Send(world, out, 0, 1); err != nil {
		panic(err)
	}
	in := make([]particle, 10)
	st, err := comm.Recv(world, in, 0, 1)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Count, "particle:", in[0].ID, in[0].Pos)
	// Output: 1 particle: 42 [1 2 3]
}

// A halo exchange on a periodic 1-D grid: Shift names the neighbours, and
// past an open edge it would give ProcNull, to which sends complete at
// once, so no rank needs a special case.
func ExampleComm_CartCreate() {
	world, _ := comm.Init()
	dims, _ := comm.DimsCreate(world.Size(), []int{0})
	grid, err := world.CartCreate(dims, []bool{true}, false)
	if err != nil {
		panic(err)
	}
	left, right := grid.Shift(0, 1)
	mine := []float64{float64(grid.Rank())}
	halo := make([]float64, 1)
	if _, err := comm.Sendrecv(grid.Comm, mine, right, 0, halo, left, 0); err != nil {
		panic(err)
	}
	fmt.Println("dims", grid.Dims(), "coords", grid.Coords(), "halo from the left:", halo[0])
	// Output: dims [1] coords [0] halo from the left: 0
}
