// Command ring passes a token around the ranks several times. Each rank
// adds its rank to the token and to a checksum carried with it; rank 0
// checks both at the end against what they must be, and the program exits
// non-zero if they differ.
//
//	mpirun -np 4 ./examples/ring -laps 10 -size 1024
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"os"

	"github.com/parley-hpc/parley/comm"
)

func main() {
	laps := flag.Int("laps", 3, "times the token goes around")
	size := flag.Int("size", 64, "token size in bytes (at least 16)")
	flag.Parse()
	if err := ring(*laps, max(*size, 16)); err != nil {
		fmt.Fprintln(os.Stderr, "ring:", err)
		os.Exit(1)
	}
}

func ring(laps, size int) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	rank, n := world.Rank(), world.Size()
	if n == 1 {
		fmt.Printf("ring: %d laps of 1 rank: nothing to pass\n", laps)
		return comm.Finalize()
	}
	next, prev := (rank+1)%n, (rank+n-1)%n
	token := make([]byte, size)
	// The token: [0:8] sum of ranks visited, [8:16] hops, the rest a payload
	// every rank rewrites and checksums.
	for lap := 0; lap < laps; lap++ {
		if rank == 0 && lap == 0 {
			fill(token, 0)
		} else {
			st, err := world.Recv(token, prev, lap)
			if err != nil {
				return err
			}
			if st.Count != size {
				return fmt.Errorf("rank %d: token of %d bytes, want %d", rank, st.Count, size)
			}
			if want := crc32.ChecksumIEEE(token[16 : size-4]); binary.LittleEndian.Uint32(token[size-4:]) != want {
				return fmt.Errorf("rank %d: token checksum mismatch on lap %d", rank, lap)
			}
		}
		if rank == 0 && lap > 0 {
			// The token came back around: check it.
			if err := check(token, lap, n); err != nil {
				return err
			}
		}
		sum := binary.LittleEndian.Uint64(token[0:]) + uint64(rank)
		hops := binary.LittleEndian.Uint64(token[8:]) + 1
		binary.LittleEndian.PutUint64(token[0:], sum)
		binary.LittleEndian.PutUint64(token[8:], hops)
		fill(token, byte(hops))
		sendTag := lap
		if next == 0 {
			sendTag = lap + 1 // rank 0 receives it at the start of the next lap
		}
		if err := world.Send(token, next, sendTag); err != nil {
			return err
		}
	}
	if rank == 0 {
		if _, err := world.Recv(token, prev, laps); err != nil {
			return err
		}
		if err := check(token, laps, n); err != nil {
			return err
		}
		fmt.Printf("ring: %d laps of %d ranks, %d-byte token: sum %d, hops %d, checksum ok\n",
			laps, n, size, binary.LittleEndian.Uint64(token), binary.LittleEndian.Uint64(token[8:]))
	}
	return comm.Finalize()
}

// fill writes a payload derived from seed and its checksum.
func fill(token []byte, seed byte) {
	for i := 16; i < len(token)-4; i++ {
		token[i] = seed + byte(i)
	}
	binary.LittleEndian.PutUint32(token[len(token)-4:], crc32.ChecksumIEEE(token[16:len(token)-4]))
}

// check verifies the token after laps full laps of n ranks.
func check(token []byte, laps, n int) error {
	wantSum := uint64(laps * n * (n - 1) / 2)
	wantHops := uint64(laps * n)
	sum, hops := binary.LittleEndian.Uint64(token), binary.LittleEndian.Uint64(token[8:])
	if sum != wantSum || hops != wantHops {
		return fmt.Errorf("token after %d laps of %d ranks: sum %d hops %d, want %d and %d", laps, n, sum, hops, wantSum, wantHops)
	}
	return nil
}
