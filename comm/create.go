package comm

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Undefined is the color that makes Split return no communicator for the
// calling rank.
const Undefined = -1 << 31

// Results of Compare, as MPI_Comm_compare.
const (
	Ident     = iota // the same communicator
	Congruent        // same ranks in the same order, different contexts
	Similar          // same ranks in another order
	Unequal
)

// Dup returns a new communicator with the same group and a context of its
// own. It is collective: every rank of c must call it, in the same order
// relative to other collective calls on c.
func (c *Comm) Dup() (*Comm, error) {
	if err := c.check("dup", 0, 0, false, 0); err != nil {
		return nil, err
	}
	rows, err := c.exchange("dup", []int64{int64(c.e.reserveCtx())})
	if err != nil {
		return nil, err
	}
	base := c.e.agreeCtx(rows)
	return newComm(c.e, base, c.rank, c.groupCopy(), c.childName()), nil
}

// Split partitions c: ranks that give the same color form a new
// communicator, ranked by key and then by their rank in c. A rank that
// gives Undefined gets nil. It is collective over c.
func (c *Comm) Split(color, key int) (*Comm, error) {
	if err := c.check("split", 0, 0, false, 0); err != nil {
		return nil, err
	}
	if color < 0 && color != Undefined {
		return nil, &OpError{Op: "split", Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer,
			Err: fmt.Errorf("%w: color %d is negative (use comm.Undefined to opt out)", ErrInvalidArg, color)}
	}
	rows, err := c.exchange("split", []int64{int64(c.e.reserveCtx()), int64(color), int64(key)})
	if err != nil {
		return nil, err
	}
	base := c.e.agreeCtx(rows)
	if color == Undefined {
		return nil, nil
	}
	type member struct{ key, rank int }
	var ms []member
	for r, row := range rows {
		if int(row[1]) == color {
			ms = append(ms, member{int(row[2]), r})
		}
	}
	slices.SortStableFunc(ms, func(a, b member) int {
		if a.key != b.key {
			return a.key - b.key
		}
		return a.rank - b.rank
	})
	group := make([]int32, len(ms))
	me := -1
	for i, m := range ms {
		group[i] = int32(c.worldRank(m.rank))
		if m.rank == c.rank {
			me = i
		}
	}
	return newComm(c.e, base, me, group, c.childName()), nil
}

// Free releases the communicator; later calls on it fail with
// ErrFinalized. Pending operations on it must be complete.
func (c *Comm) Free() error {
	if c.parent != nil {
		return c.parent.Free()
	}
	if c.base == worldCtx {
		return &OpError{Op: "free", Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer,
			Err: fmt.Errorf("%w: the world communicator cannot be freed", ErrInvalidArg)}
	}
	if c.freed.Swap(true) {
		return nil
	}
	c.coll.freed.Store(true)
	e := c.e
	e.mu.Lock()
	for k := uint32(0); k < ctxStride; k++ {
		if q := e.queues[c.base+k]; q != nil && q.postedHead == nil && q.unexpHead == nil {
			delete(e.queues, c.base+k)
			if e.lastQ == q {
				e.lastQ = nil
			}
		}
	}
	e.mu.Unlock()
	return nil
}

// Compare compares two communicators as MPI_Comm_compare does.
func Compare(a, b *Comm) int {
	if a == b || a.e == b.e && a.ctx == b.ctx && slices.Equal(a.worldGroup(), b.worldGroup()) {
		return Ident
	}
	ga, gb := a.worldGroup(), b.worldGroup()
	if slices.Equal(ga, gb) {
		return Congruent
	}
	sa, sb := slices.Clone(ga), slices.Clone(gb)
	slices.Sort(sa)
	slices.Sort(sb)
	if slices.Equal(sa, sb) {
		return Similar
	}
	return Unequal
}

func (c *Comm) worldGroup() []int32 {
	if c.group != nil {
		return c.group
	}
	g := make([]int32, c.size)
	for i := range g {
		g[i] = int32(i)
	}
	return g
}

func (c *Comm) groupCopy() []int32 {
	if c.group == nil {
		return nil
	}
	return slices.Clone(c.group)
}

func (c *Comm) childName() string {
	n := c.children.Add(1)
	if c.parent != nil {
		n = c.parent.children.Add(1)
	}
	return fmt.Sprintf("%s.%d", c.label, n)
}

// reserveCtx returns the lowest context id this rank has not used.
func (e *engine) reserveCtx() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nextCtx
}

// agreeCtx takes the largest proposal (row[0] of each rank) as the new
// communicator's context, free on every member, and moves this rank's next
// free context past it. Every member computes the same answer.
func (e *engine) agreeCtx(rows [][]int64) uint32 {
	var base uint32
	for _, row := range rows {
		base = max(base, uint32(row[0]))
	}
	e.mu.Lock()
	e.nextCtx = max(e.nextCtx, base+ctxStride)
	e.mu.Unlock()
	return base
}

// exchange gathers every rank's row of numbers (all rows the same length)
// at every rank, over c's internal context: a gather to rank 0 and a
// broadcast back. It runs only when communicators are made, so a simple
// O(size) algorithm suffices.
func (c *Comm) exchange(op string, row []int64) ([][]int64, error) {
	e := c.e
	ctx := c.base + ctxInternal
	n := len(row)
	rowBytes := 8 * n
	all := make([]byte, rowBytes*c.size)
	for i, v := range row {
		binary.LittleEndian.PutUint64(all[c.rank*rowBytes+8*i:], uint64(v))
	}
	const tagGather, tagBcast = 1, 2
	wrap := func(err error) error {
		return &OpError{Op: op, Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer, Err: err}
	}
	if c.rank == 0 {
		reqs := make([]*Request, 0, c.size)
		for r := 1; r < c.size; r++ {
			reqs = append(reqs, e.irecv(c, all[r*rowBytes:(r+1)*rowBytes], c.worldRank(r), tagGather, ctx, false))
		}
		if _, err := Waitall(reqs...); err != nil {
			return nil, wrap(err)
		}
		reqs = reqs[:0]
		for r := 1; r < c.size; r++ {
			reqs = append(reqs, e.isend(c, all, c.worldRank(r), tagBcast, ctx, false, false))
		}
		if _, err := Waitall(reqs...); err != nil {
			return nil, wrap(err)
		}
	} else {
		if _, err := e.finish(e.isend(c, all[c.rank*rowBytes:(c.rank+1)*rowBytes], c.worldRank(0), tagGather, ctx, false, true)); err != nil {
			return nil, wrap(err)
		}
		st, err := e.finish(e.irecv(c, all, c.worldRank(0), tagBcast, ctx, true))
		if err != nil {
			return nil, wrap(err)
		}
		if st.Count != len(all) {
			return nil, wrap(fmt.Errorf("ranks disagree on the %s call: rank 0 sent %d bytes, expected %d", op, st.Count, len(all)))
		}
	}
	rows := make([][]int64, c.size)
	for r := range rows {
		rows[r] = make([]int64, n)
		for i := range rows[r] {
			rows[r][i] = int64(binary.LittleEndian.Uint64(all[r*rowBytes+8*i:]))
		}
	}
	return rows, nil
}
