// Command samplesort sorts int64 keys spread over the ranks with a sample
// sort: each rank sorts its keys, the ranks agree on splitters from a
// regular sample of everyone's keys, then every rank sends each of its
// keys to the rank whose range holds it, in one Alltoallv, and sorts what
// it got.
//
// It shows: Allgather of samples, Alltoall of counts, Alltoallv with
// variable counts and displacements.
//
// It checks itself: the result is in global order (each rank's keys sorted
// and at most the next rank's first), the multiset of keys is kept (count
// and a 64-bit hash sum, with Allreduce), and for small inputs rank 0
// gathers everything and compares with sorting all keys serially. It exits
// non-zero at the first difference.
//
//	mpirun -np 4 ./samplesort -n 100000
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

func main() {
	n := flag.Int("n", 10000, "keys per rank")
	seed := flag.Uint64("seed", 1, "random seed")
	check := flag.Int("check", 1<<20, "compare with a serial sort when the total is at most this")
	flag.Parse()
	if err := run(*n, *seed, *check); err != nil {
		fmt.Fprintln(os.Stderr, "samplesort:", err)
		os.Exit(1)
	}
}

// mix is a 64-bit hash of a key, summed to tell whether a multiset of
// keys was kept (SplitMix64's finalizer).
func mix(k int64) uint64 {
	z := uint64(k) + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func keysOf(rank, n int, seed uint64) []int64 {
	rng := rand.New(rand.NewPCG(seed, uint64(rank)))
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = rng.Int64N(1<<40) - 1<<39
	}
	return keys
}

func run(n int, seed uint64, check int) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	defer comm.Finalize()
	rank, p := world.Rank(), world.Size()
	keys := keysOf(rank, n, seed)
	var hashIn uint64
	for _, k := range keys {
		hashIn += mix(k)
	}
	start := time.Now()

	// Sort locally and take p regularly spaced samples.
	slices.Sort(keys)
	samples := make([]int64, p)
	for i := range samples {
		if n > 0 {
			samples[i] = keys[i*n/p]
		}
	}
	all := make([]int64, p*p)
	if err := collectives.Allgather(world, samples, all); err != nil {
		return err
	}
	slices.Sort(all)
	splitters := make([]int64, p-1) // rank r takes keys in [splitters[r-1], splitters[r])
	for i := range splitters {
		splitters[i] = all[(i+1)*p]
	}

	// Keys for rank r form one run of the sorted local keys.
	sendCounts := make([]int, p)
	for r, lo := 0, 0; r < p; r++ {
		hi := n
		if r < p-1 {
			hi = sort.Search(n, func(i int) bool { return keys[i] >= splitters[r] })
		}
		sendCounts[r] = hi - lo
		lo = hi
	}
	recvCounts := make([]int, p)
	if err := collectives.Alltoall(world, sendCounts, recvCounts); err != nil {
		return err
	}
	total := 0
	for _, c := range recvCounts {
		total += c
	}
	mine := make([]int64, total)
	if err := collectives.Alltoallv(world, keys, sendCounts, nil, mine, recvCounts, nil); err != nil {
		return err
	}
	slices.Sort(mine)
	elapsed := time.Since(start)

	// Global order: my last key is at most the next rank's first.
	var next []int64
	if p > 1 {
		edge := []int64{1<<63 - 1}
		if len(mine) > 0 {
			edge[0] = mine[0]
		}
		got := make([]int64, 1)
		if _, err := comm.Sendrecv(world, edge, (rank+p-1)%p, 5, got, (rank+1)%p, 5); err != nil {
			return err
		}
		next = got
	}
	ok := slices.IsSorted(mine)
	if ok && rank < p-1 && len(mine) > 0 && mine[len(mine)-1] > next[0] {
		ok = false
	}
	var hashOut uint64
	for _, k := range mine {
		hashOut += mix(k)
	}
	sums := make([]uint64, 3)
	if err := collectives.Allreduce(world, []uint64{uint64(len(mine)), hashIn, hashOut}, sums, collectives.Sum); err != nil {
		return err
	}
	flags := make([]int32, 1)
	if err := collectives.Allreduce(world, []int32{int32(btoi(!ok))}, flags, collectives.Max); err != nil {
		return err
	}
	if sums[0] != uint64(p*n) || sums[1] != sums[2] {
		return fmt.Errorf("keys lost or changed: %d keys after the sort, %d before (hashes %x, %x)", sums[0], p*n, sums[2], sums[1])
	}
	if flags[0] != 0 {
		return fmt.Errorf("the result is not in global order (rank %d's part at least)", rank)
	}

	// Small inputs: gather both and compare with a serial sort.
	if p*n <= check {
		got, err := gatherAll(world, mine)
		if err != nil {
			return err
		}
		if rank == 0 {
			var want []int64
			for r := 0; r < p; r++ {
				want = append(want, keysOf(r, n, seed)...)
			}
			slices.Sort(want)
			for i := range want {
				if got[i] != want[i] {
					return fmt.Errorf("key %d is %d, the serial sort gives %d", i, got[i], want[i])
				}
			}
		}
	}
	lo, hi := minMax(world, len(mine))
	if rank == 0 {
		fmt.Printf("samplesort: %d keys on %d ranks sorted in %.3f s; parts of %d..%d keys\n", p*n, p, elapsed.Seconds(), lo, hi)
		fmt.Println("samplesort: in global order, every key kept")
	}
	return nil
}

// minMax returns the smallest and largest part (collective).
func minMax(c *comm.Comm, n int) (int, int) {
	lo, hi := make([]int64, 1), make([]int64, 1)
	collectives.Allreduce(c, []int64{int64(n)}, lo, collectives.Min)
	collectives.Allreduce(c, []int64{int64(n)}, hi, collectives.Max)
	return int(lo[0]), int(hi[0])
}

func gatherAll(c *comm.Comm, mine []int64) ([]int64, error) {
	counts := make([]int, c.Size())
	if err := collectives.Gather(c, []int{len(mine)}, counts, 0); err != nil {
		return nil, err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	all := make([]int64, total)
	return all, collectives.Gatherv(c, mine, all, counts, nil, 0)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
