package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// Barrier returns once every rank of c has entered it.
//
// Algorithm: dissemination (Hensgen, Finkel and Manber, "Two algorithms
// for barrier synchronization", 1988): in round k each rank signals rank
// +2^k and waits for rank -2^k; after ceil(log2 n) rounds every rank has
// heard, directly or not, from every other. Correct for any n.
func Barrier(c *comm.Comm) (err error) {
	kv, err := begin(c, coll.Barrier, coll.Args{})
	if err != nil {
		return err
	}
	k := &kv
	defer k.settle(&err)
	var none [0]byte
	for d := 1; d < k.size; d *= 2 {
		to, from := (k.rank+d)%k.size, (k.rank-d+k.size)%k.size
		if err := k.exchange(none[:], to, none[:], from); err != nil {
			return err
		}
	}
	return nil
}
