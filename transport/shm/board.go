package shm

import (
	"fmt"

	"github.com/parley-hpc/parley/internal/release"
	"github.com/parley-hpc/parley/transport"
)

// BoardMax is the most bytes a rank puts on its board for one call.
const BoardMax = 1024

// A Board is the board of one rank's segment: a small area, after the
// rings, on which the rank posts its part of a small collective call for
// every rank of the host to read where it lies, instead of sending it to
// each (package comm holds the protocol). Only the owner writes its board;
// the others read it.
//
// It holds an arrival word, which the owner stores as each collective
// call begins, a release word (comm's Barrier: the first rank stores it
// once every rank has posted), and two parts, used by turns: a part's
// word says which call its data belongs to. A word's meaning is comm's;
// here they are opaque.
//
// Ordering: Post copies the data in with plain stores, then stores the
// part's word (an atomic store, sequentially consistent) and the arrival
// word; a reader loads a word (atomic) before it reads the data the word
// announces. The part's word comes before Post's loads of the peers' bells
// (Wake), as a sleeper's arming of its bell comes before its last look at
// the boards: one of the two sees the other. The arrival word wakes
// nobody, and its readers need only see it after what was stored before
// it (comm's look): a release store (internal/release), which does not
// hold the core until the line, which the peers read, is owned again. It
// is stored at every collective call on the world, posted or not: 2
// ranks, Bcast of 1-128 B, 9 interleaved runs, 0.94-1.00 of the time with
// Go's atomic store.
type Board struct {
	v   boardView
	seg *segment // keeps the mapping (and, once retired, its zero pages) alive
}

// OwnBoard returns this rank's board.
func (t *Transport) OwnBoard() *Board { return &Board{v: t.own.g.board(), seg: t.own} }

// PeerBoard returns the board of local peer rank, whose segment is name
// and whose process is pid, mapping the segment if this rank does not
// send to it yet (without attaching a ring: the peer polls no ring for
// it). It is called under the owner's lock, as Reach is.
func (t *Transport) PeerBoard(rank int, name string, pid int) (*Board, error) {
	if t.closed.Load() {
		return nil, fmt.Errorf("shm board of rank %d: %w", rank, transport.ErrClosed)
	}
	if p := t.peers[rank]; p != nil {
		return &Board{v: p.seg.g.board(), seg: p.seg}, nil
	}
	if seg := t.boardSegs[rank]; seg != nil {
		return &Board{v: seg.g.board(), seg: seg}, nil
	}
	seg, err := openSegment(t.cfg.Dir, name)
	if err != nil {
		return nil, fmt.Errorf("shm board of rank %d: %w", rank, err)
	}
	if owner := int(seg.g.hdr.pid); owner != pid {
		seg.close()
		return nil, fmt.Errorf("shm board of rank %d: segment %s belongs to pid %d, the rank is pid %d", rank, name, owner, pid)
	}
	if t.boardSegs == nil {
		t.boardSegs = make(map[int]*segment)
	}
	t.boardSegs[rank] = seg
	return &Board{v: seg.g.board(), seg: seg}, nil
}

// Arrive stores the arrival word (a release store: see Board).
func (b *Board) Arrive(word uint64) { release.Store64(b.v.arrival, word) }

// Arrival loads the arrival word.
func (b *Board) Arrival() uint64 { return b.v.arrival.Load() }

// Word loads the word of part i (0 or 1).
func (b *Board) Word(i int) uint64 { return b.v.word[i].Load() }

// Data returns the BoardMax bytes of part i, to read after Word announced
// them.
func (b *Board) Data(i int) []byte { return b.v.data[i] }

// Post copies data (at most BoardMax bytes) into part i, then stores the
// part's word and the arrival word, both word.
func (b *Board) Post(i int, word uint64, data []byte) {
	copy(b.v.data[i], data)
	b.v.word[i].Store(word)
	release.Store64(b.v.arrival, word)
}

// Release stores the release word.
func (b *Board) Release(word uint64) { b.v.release.Store(word) }

// Released loads the release word.
func (b *Board) Released() uint64 { return b.v.release.Load() }

// Wake rings the owner's bell if the owner sleeps on it.
func (b *Board) Wake() { transport.NewBell(b.v.bell).Ring() }
