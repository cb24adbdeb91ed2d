package comm

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/fnv"
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
	if err := c.usable("dup"); err != nil {
		return nil, err
	}
	base, _, err := c.agreeContext("dup", nil)
	if err != nil {
		return nil, err
	}
	return newComm(c.e, base, c.rank, c.groupCopy(), c.childName()), nil
}

// Split partitions c: ranks that give the same color form a new
// communicator, ranked by key and then by their rank in c. A rank that
// gives Undefined gets nil. It is collective over c.
func (c *Comm) Split(color, key int) (*Comm, error) {
	if err := c.usable("split"); err != nil {
		return nil, err
	}
	if color < 0 && color != Undefined {
		return nil, &OpError{Op: "split", Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer,
			Err: fmt.Errorf("%w: color %d is negative (use comm.Undefined to opt out)", ErrInvalidArg, color)}
	}
	return c.split("split", int64(color), color != Undefined, key)
}

// TypeShared is the split type of SplitType that groups the ranks of one
// host (MPI_COMM_TYPE_SHARED): those that share memory.
const TypeShared = 1

// SplitType splits c by a property of the ranks (MPI_Comm_split_type):
// with TypeShared, the ranks of each host form one communicator, ranked
// by key and then by their rank in c. Another split type, or Undefined,
// gives the calling rank no communicator (nil). It is collective over c.
func (c *Comm) SplitType(splitType, key int) (*Comm, error) {
	if err := c.usable("split_type"); err != nil {
		return nil, err
	}
	if splitType != TypeShared {
		_, err := c.split("split_type", 0, false, key)
		return nil, err
	}
	// The host's identity (the same PARLEY_NODE_ID or host name decides
	// shared memory), hashed to the 64-bit color the ranks compare.
	h := fnv.New64a()
	h.Write([]byte(c.e.node))
	return c.split("split_type", int64(h.Sum64()&(1<<63-1)), true, key)
}

// split partitions c: ranks with in and equal colors form a communicator,
// ranked by key and then by their rank in c; a rank that is not in gets
// nil.
func (c *Comm) split(op string, color int64, in bool, key int) (*Comm, error) {
	flag := int64(0)
	if in {
		flag = 1
	}
	base, rows, err := c.agreeContext(op, []int64{flag, color, int64(key)})
	if err != nil {
		return nil, err
	}
	if !in {
		c.e.releaseCtx(base) // this rank is in no part
		return nil, nil
	}
	type member struct{ key, rank int }
	var ms []member
	for r, row := range rows {
		if row[0] == 1 && row[1] == color {
			ms = append(ms, member{int(row[2]), r})
		}
	}
	slices.SortStableFunc(ms, func(a, b member) int {
		if a.key != b.key {
			return cmp.Compare(a.key, b.key) // not a.key-b.key: that overflows for extreme keys
		}
		return cmp.Compare(a.rank, b.rank)
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

// Free releases the communicator: later calls on it fail with ErrFreed,
// and so does a second Free. Operations on it must be complete. The world
// cannot be freed.
func (c *Comm) Free() error {
	if c == nil {
		return &OpError{Op: "free", Comm: "nil", Rank: -1, Peer: noPeer, Tag: noPeer, Err: ErrCommNull}
	}
	if c.parent != nil {
		return c.parent.Free()
	}
	if c.base == worldCtx {
		return &OpError{Op: "free", Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer,
			Err: fmt.Errorf("%w: the world communicator cannot be freed", ErrInvalidArg)}
	}
	if c.freed.Swap(true) {
		return &OpError{Op: "free", Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer, Err: ErrFreed}
	}
	c.coll.freed.Store(true)
	e := c.e
	e.mu.Lock()
	empty := true
	for k := uint32(0); k < ctxStride; k++ {
		if q := e.queues[c.base+k]; q != nil {
			if q.postedHead != nil || q.unexpHead != nil {
				empty = false
				continue
			}
			delete(e.queues, c.base+k)
			if e.lastQ == q {
				e.lastQ = nil
			}
		}
	}
	if empty {
		// Reusable: no message of the old communicator waits under its
		// context (one that still does keeps the id claimed for good).
		delete(e.ctxClaimed, c.base)
	}
	e.unlock()
	return nil
}

// Compare compares two communicators as MPI_Comm_compare does.
func Compare(a, b *Comm) int {
	if a == nil || b == nil {
		if a == b {
			return Ident
		}
		return Unequal
	}
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

// agreeContext agrees with the other ranks of c on a context id that no
// member uses, and claims it on this rank. It also gathers extra, a row of
// numbers from each rank (Split's color and key), and returns the rows.
//
// Each round, every rank proposes the lowest id at or above a floor that
// it has not claimed, and the largest proposal wins. That id may have been
// claimed meanwhile by another communicator made concurrently on this
// rank (Dup of two communicators in two goroutines, legal under
// THREAD_MULTIPLE), so each rank then tries to claim it, atomically, and
// the ranks exchange the outcome: if every rank claimed it, it is theirs;
// if not, those that did release it and all try again above it. It is
// MPICH's mask-and-retry agreement in a simpler form: two exchanges in the
// common case, over c's internal context.
func (c *Comm) agreeContext(op string, extra []int64) (uint32, [][]int64, error) {
	e := c.e
	floor := uint32(ctxStride)
	for {
		row := append([]int64{int64(e.proposeCtx(floor))}, extra...)
		rows, err := c.exchange(op, row, inCreate)
		if err != nil {
			return 0, nil, err
		}
		var base uint32
		for _, r := range rows {
			base = max(base, uint32(r[0]))
		}
		claimed := e.claimCtx(base)
		flag := int64(0)
		if claimed {
			flag = 1
		}
		flags, err := c.exchange(op, []int64{flag}, inCreate)
		if err != nil {
			if claimed {
				e.releaseCtx(base)
			}
			return 0, nil, err
		}
		all := true
		for _, f := range flags {
			all = all && f[0] == 1
		}
		if all {
			for i := range rows {
				rows[i] = rows[i][1:]
			}
			return base, rows, nil
		}
		if claimed {
			e.releaseCtx(base)
		}
		floor = base + ctxStride
	}
}

// proposeCtx returns the lowest context id at or above floor that this
// rank has not claimed.
func (e *engine) proposeCtx(floor uint32) uint32 {
	e.mu.Lock()
	defer e.unlock()
	id := floor
	for e.ctxClaimed[id] {
		id += ctxStride
	}
	return id
}

// claimCtx claims id for a new communicator if nothing on this rank has
// it, and reports whether it did.
func (e *engine) claimCtx(id uint32) bool {
	e.mu.Lock()
	defer e.unlock()
	if e.ctxClaimed[id] {
		return false
	}
	e.ctxClaimed[id] = true
	return true
}

// releaseCtx gives a claimed context id back.
func (e *engine) releaseCtx(id uint32) {
	e.mu.Lock()
	delete(e.ctxClaimed, id)
	e.unlock()
}

// exchange gathers every rank's row of numbers (all rows the same length)
// at every rank, over c's internal context: a gather to rank 0 and a
// broadcast back. It runs only when communicators are made and at
// Finalize, so a simple O(size) algorithm suffices. what names the call
// for the hang report.
func (c *Comm) exchange(op string, row []int64, what waitWhat) ([][]int64, error) {
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
			reqs = append(reqs, e.irecv(c, all[r*rowBytes:(r+1)*rowBytes], c.worldRank(r), tagGather, ctx, false, 0))
		}
		if err := e.waitAll(reqs, what); err != nil {
			return nil, wrap(err)
		}
		reqs = reqs[:0]
		for r := 1; r < c.size; r++ {
			reqs = append(reqs, e.isend(c, all, c.worldRank(r), tagBcast, ctx, false, false, 0))
		}
		if err := e.waitAll(reqs, what); err != nil {
			return nil, wrap(err)
		}
	} else {
		if _, err := e.finish(e.isend(c, all[c.rank*rowBytes:(c.rank+1)*rowBytes], c.worldRank(0), tagGather, ctx, false, true, 0), what); err != nil {
			return nil, wrap(err)
		}
		st, err := e.finish(e.irecv(c, all, c.worldRank(0), tagBcast, ctx, true, 0), what)
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

// waitAll waits for internal requests (a communicator's creation, or
// Finalize's) and returns the first error.
func (e *engine) waitAll(reqs []*Request, what waitWhat) error {
	var first error
	for i := len(reqs) - 1; i >= 0; i-- { // the last first, as Waitall
		e.wait(reqs[i], what)
		if reqs[i].err != nil {
			first = reqs[i].err
		}
	}
	return first
}
