package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// Reduce combines the in vectors of all ranks element by element with op
// and leaves the result in root's out (out is ignored elsewhere and may
// be nil). At the root, passing the same slice as in and out reduces in
// place.
//
// Algorithm: a binomial tree (as MPICH's): rank vr (relative to the root)
// receives the partial results of its subtrees, lowest first, and passes
// its own up; every partial result is lower ranks op higher ranks. A
// non-commutative op is reduced with root 0 (so relative and absolute
// ranks agree) and sent to the root after.
func Reduce[T Elem](c *comm.Comm, in, out []T, op Op, root int) (err error) {
	// Before the call begins: every rank finds the same, and nobody is
	// left waiting (see call.settle).
	if err := checkOp[T](op); err != nil {
		return opError(coll.Reduce, err)
	}
	kv, err := start[T](c, coll.Reduce, root, op.name, len(in))
	if err != nil {
		return err
	}
	k := &kv
	defer k.settle(&err)
	if err := k.checkRoot(root); err != nil {
		return err
	}
	if k.rank == root && len(out) < len(in) {
		return k.errorf("%w: out holds %d elements, in %d", comm.ErrInvalidArg, len(out), len(in))
	}
	treeRoot := root
	if !op.commutative {
		treeRoot = 0
	}
	acc, release := scratch[T](len(in))
	defer release.release()
	copy(acc, in)
	if err := reduceBinomial(k, acc, op, treeRoot); err != nil {
		return err
	}
	if treeRoot != root {
		switch k.rank {
		case treeRoot:
			if err := k.send(asBytes(acc), root); err != nil {
				return k.fail(err)
			}
		case root:
			if err := k.recvExact(asBytes(acc), treeRoot); err != nil {
				return err
			}
		}
	}
	if k.rank == root {
		copy(out, acc)
	}
	return nil
}

// reduceBinomial reduces acc (this rank's values) toward root; at the root
// acc ends as the result.
func reduceBinomial[T Elem](k *call, acc []T, op Op, root int) error {
	n := k.size
	vr := (k.rank - root + n) % n
	var tmp []T
	for mask := 1; mask < n; mask <<= 1 {
		if vr&mask != 0 {
			return k.fail(k.send(asBytes(acc), (vr&^mask+root)%n))
		}
		src := vr | mask
		if src >= n {
			continue
		}
		if tmp == nil {
			var buf scratchBuf
			tmp, buf = scratch[T](len(acc))
			defer buf.release()
		}
		if err := k.recvExact(asBytes(tmp), (src+root)%n); err != nil {
			return err
		}
		if err := apply(op, acc, tmp); err != nil {
			return k.fail(err)
		}
	}
	return nil
}
