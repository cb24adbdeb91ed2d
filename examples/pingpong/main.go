// Command pingpong measures what a message costs between two ranks: rank
// 0 sends a message to rank 1, which sends it back, many times per size;
// half the round trip is the latency, size over it the bandwidth. It is
// the shortest measurement, for users who will never read bench/ (which
// measures the way the OSU benchmarks do, and compares with other MPIs).
//
// It checks itself: every echo must come back unchanged. It exits
// non-zero at the first difference. It needs two ranks; other ranks wait.
//
//	mpirun -np 2 ./pingpong -max 4194304
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/parley-hpc/parley/comm"
)

func main() {
	maxSize := flag.Int("max", 1<<20, "largest message, bytes")
	iters := flag.Int("iters", 1000, "round trips per size (fewer for large ones)")
	flag.Parse()
	if err := run(*maxSize, *iters); err != nil {
		fmt.Fprintln(os.Stderr, "pingpong:", err)
		os.Exit(1)
	}
}

func run(maxSize, iters int) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	defer comm.Finalize()
	if world.Size() < 2 {
		fmt.Println("pingpong: needs two ranks (mpirun -np 2 ./pingpong)")
		return nil
	}
	rank := world.Rank()
	if rank > 1 {
		return nil
	}
	peer := 1 - rank
	if rank == 0 {
		fmt.Printf("%10s %14s %14s\n", "bytes", "latency (us)", "MB/s")
	}
	for size := 1; size <= maxSize; size *= 4 {
		n := iters
		if size >= 64<<10 {
			n = max(10, iters/10)
		}
		out, in := make([]byte, size), make([]byte, size)
		for i := range out {
			out[i] = byte(i*7 + size)
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			if rank == 0 {
				if err := world.Send(out, peer, 1); err != nil {
					return err
				}
				if _, err := world.Recv(in, peer, 1); err != nil {
					return err
				}
			} else {
				if _, err := world.Recv(in, peer, 1); err != nil {
					return err
				}
				if err := world.Send(in, peer, 1); err != nil {
					return err
				}
			}
		}
		elapsed := time.Since(start)
		if rank == 0 {
			if !bytes.Equal(in, out) {
				return fmt.Errorf("a %d-byte message came back changed", size)
			}
			lat := elapsed.Seconds() / float64(2*n)
			fmt.Printf("%10d %14.2f %14.1f\n", size, lat*1e6, float64(size)/lat/1e6)
		}
	}
	return nil
}
