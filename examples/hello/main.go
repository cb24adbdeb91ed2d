// Command hello is the smallest parley program: every rank prints its rank,
// the world size, its host and pid, then all ranks exchange one message
// with a neighbour so that the start-up of the transports is exercised.
package main

import (
	"fmt"
	"os"

	"github.com/parley-hpc/parley/comm"
)

func main() {
	world, err := comm.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	rank, size := world.Rank(), world.Size()
	fmt.Printf("hello from rank %d of %d on %s (pid %d)\n", rank, size, comm.Hostname(), os.Getpid())

	// One exchange around the ring: send my rank right, receive from the left.
	if size > 1 {
		right, left := (rank+1)%size, (rank+size-1)%size
		got := make([]int64, 1)
		if _, err := world.Sendrecv(comm.Bytes([]int64{int64(rank)}), right, 0, comm.Bytes(got), left, 0); err != nil {
			fmt.Fprintln(os.Stderr, "hello:", err)
			os.Exit(1)
		}
		if got[0] != int64(left) {
			fmt.Fprintf(os.Stderr, "hello: rank %d got %d from its left neighbour %d\n", rank, got[0], left)
			os.Exit(1)
		}
	}
	if err := comm.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
