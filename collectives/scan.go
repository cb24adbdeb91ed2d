package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// Scan is the inclusive prefix reduction: rank r's out is in(0) op in(1)
// op ... op in(r), combined in rank order (so non-commutative operators
// work). out may be in (in place).
//
// Algorithm: recursive doubling over the hypercube (as MPICH's
// MPIR_Scan_generic): in step 2^j a rank exchanges its partial result
// with rank XOR 2^j and folds in what comes from below.
func Scan[T Elem](c *comm.Comm, in, out []T, op Op) error {
	return scan(c, coll.Scan, in, out, op, false)
}

// Exscan is the exclusive prefix reduction: rank r's out is in(0) op ...
// op in(r-1); rank 0's out is left unchanged.
func Exscan[T Elem](c *comm.Comm, in, out []T, op Op) error {
	return scan(c, coll.Exscan, in, out, op, true)
}

func scan[T Elem](c *comm.Comm, kind coll.Kind, in, out []T, op Op, exclusive bool) (err error) {
	// Before the call begins: every rank finds the same, and nobody is
	// left waiting (see call.settle).
	if err := checkOp[T](op); err != nil {
		return opError(kind, err)
	}
	var kv call
	k := &kv
	if err := start[T](k, c, kind, 0, op.name, len(in)); err != nil {
		return err
	}
	defer k.settle(&err)
	if len(out) != len(in) {
		return k.errorf("%w: out holds %d elements, in %d", comm.ErrInvalidArg, len(out), len(in))
	}
	n := len(in)
	partial, rel1 := scratch[T](n) // the reduction of this rank's current hypercube block
	defer rel1.release()
	tmp, rel2 := scratch[T](n)
	defer rel2.release()
	lower, rel3 := scratch[T](n)
	defer rel3.release()
	copyElems(partial, in)
	if !exclusive && !sameVector(in, out) {
		copyElems(out, in)
	}
	haveOut := !exclusive
	for mask := 1; mask < k.size; mask <<= 1 {
		dst := k.rank ^ mask
		if dst >= k.size {
			continue
		}
		if err := k.exchange(asBytes(partial), dst, asBytes(tmp), dst); err != nil {
			return err
		}
		if dst > k.rank {
			// Values of higher ranks only join the block's partial result.
			if err := apply(op, partial, tmp); err != nil {
				return k.fail(err)
			}
			continue
		}
		// tmp holds lower ranks: out = tmp op out, partial = tmp op partial.
		if haveOut {
			copyElems(lower, tmp)
			if err := apply(op, lower, out); err != nil {
				return k.fail(err)
			}
			copyElems(out, lower)
		} else {
			copyElems(out, tmp)
			haveOut = true
		}
		if err := apply(op, tmp, partial); err != nil {
			return k.fail(err)
		}
		copyElems(partial, tmp)
	}
	return nil
}
