package comm

import (
	"fmt"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/coll"
	"github.com/parley-hpc/parley/transport/shm"
)

// The board: small collectives of the world communicator when every rank
// is on one host with shared memory. Each rank posts its part of a call
// (Barrier: nothing; Allreduce, Allgather, Alltoall, ReduceScatter: its
// vector) on the board of its own segment (transport/shm, Board), and
// reads every other rank's part
// where it lies, once all have posted: one step where messages take
// log2(n) rounds or two through a root, and no message at all. With more
// ranks than cores, where every step waits for the ranks that share a core
// to be scheduled, that is what pays (BENCHMARKS.md). Open MPI's sm and
// xhc components and MPICH's release/gather collectives work alike.
//
// Protocol. A board word is a call's sequence number (the tag of the
// collective view, 30 bits, compared modulo 2^30) and its check word. As
// every collective call on the world begins, the rank stores its word in
// its arrival word (collBegin), whatever path the call then takes. A
// board call posts its part into one of two parts, by turns (the parity of
// the board calls made: the same on every rank, since every rank takes
// the board for the same calls), and then waits until every other rank's
// part of the same parity holds this call's word. A part is not written
// again before every rank has read it: the rank's next call in that part
// is two board calls later, and it cannot begin before it has seen every
// rank post the board call in between (directly, or through rank 0's
// release), which each does only after reading. Calls that send messages
// in between change nothing: no rank posts during them
// (TestBoardAmongMessages).
//
// Mismatches end in an error, not a wait: a part or an arrival word that
// names this call with another check word, or that names a later call
// while the part does not name this one (the peer went past this call
// without posting it: it took another collective, with messages), is
// ErrMismatch, and the collective then revokes the communicator's
// collectives (call.settle), which tells the ranks that wait on messages.
// Every board call waits for every rank's part (the oversubscribed
// Barrier's ranks through rank 0, which waits for all before it releases
// them), so a rank that took another path is always seen.

// boardState says whether the world has a board.
const (
	boardUnknown int32 = iota // not yet worked out (the first collective call on the world does)
	boardNone
	boardReady
)

// board is this rank's view of the boards of the world's ranks.
type board struct {
	own   *shm.Board
	parts []*shm.Board      // by world rank, this rank's own included; mapped at the first board call
	cards []*bootstrap.Card // by world rank (nil for this rank's): where parts are mapped from
	// calls counts this rank's board calls, which choose the part; only
	// the goroutine in the world's collective call touches it.
	calls uint64
}

// boardWord is the word of collective call tag with check word check.
func boardWord(tag int, check uint32) uint64 { return uint64(tag)<<32 | uint64(check) }

// boardGen and boardCheck take a board word apart.
func boardGen(w uint64) uint32   { return uint32(w >> 32) }
func boardCheck(w uint64) uint32 { return uint32(w) }

// later reports whether sequence number a comes after b, modulo 2^30
// (MaxTag+1): ranks are never half that many calls apart.
func later(a, b uint32) bool {
	d := (a - b) & MaxTag
	return d != 0 && d < (MaxTag+1)/2
}

// worldBoard returns the world's board if view v, a collective view, is
// the world's and the world has one; it works out whether it has one at
// the first call, from the ranks' cards: all on this host, all with a
// segment. Every rank reads the same cards and comes to the same answer,
// which is what lets the collectives choose the board by it.
func (e *engine) worldBoard(v *Comm) *board {
	if e.world == nil || v != e.world.coll {
		return nil
	}
	switch e.boardState.Load() {
	case boardReady:
		return e.board
	case boardNone:
		return nil
	}
	e.mu.Lock()
	defer e.unlock()
	if e.boardState.Load() == boardUnknown {
		e.board = e.newBoardLocked()
		state := boardNone
		if e.board != nil {
			state = boardReady
		}
		e.boardState.Store(state)
	}
	return e.board
}

// newBoardLocked returns the world's board, or nil where there is none.
func (e *engine) newBoardLocked() *board {
	if e.shm == nil || e.size < 2 || debugInt("no_board") == 1 {
		return nil
	}
	cards := make([]*bootstrap.Card, e.size)
	for r := range e.size {
		if r == e.rank {
			continue
		}
		card, err := e.cardLocked(r)
		if err != nil || card.Node != e.node || card.Shm == "" {
			return nil
		}
		cards[r] = card
	}
	return &board{own: e.shm.OwnBoard(), cards: cards}
}

// mapLocked maps the other ranks' boards, once, from the cards
// newBoardLocked read.
func (b *board) mapLocked(e *engine) error {
	if b.parts != nil {
		return nil
	}
	parts := make([]*shm.Board, e.size)
	for r, card := range b.cards {
		if r == e.rank {
			parts[r] = b.own
			continue
		}
		var err error
		if parts[r], err = e.shm.PeerBoard(r, card.Shm, card.Pid); err != nil {
			return err
		}
	}
	b.parts, b.cards = parts, nil
	return nil
}

// collBoard reports whether call k may take the board.
func collBoard(k coll.Call) bool {
	v := k.View.(*Comm)
	return v.e.worldBoard(v) != nil
}

// collBoardExchange posts data as this rank's part of call k and waits
// until every rank has posted its part.
func collBoardExchange(k coll.Call, data []byte) error {
	v := k.View.(*Comm)
	e := v.e
	b := e.board
	if err := e.boardBegin(v, b, k); err != nil {
		return err
	}
	part := b.post(k, data)
	for r, p := range b.parts {
		if r != e.rank {
			p.Wake()
		}
	}
	return e.boardWait(v, b, k, part, -1)
}

// collBoardBarrier is a barrier on the board. With a core per rank, every
// rank posts and waits for every post, as an exchange of nothing. With more
// ranks than cores it goes through rank 0: every rank posts, rank 0 waits
// until all have, then stores its release word, which the others wait
// for. Rank 0 then leaves first, as from a linear barrier of messages, and
// a Bcast or Scatter from rank 0 right after it finds the others still
// being scheduled, where they would have waited for it (4 ranks on 2
// cores, 8-128 B, 5 interleaved runs: Bcast 0.98-1.0 us after it, 2.7-2.9
// after the exchange; the barrier itself alike). With a core each the
// exchange is one step where this is two (2 ranks: 0.43 against 0.69 us).
func collBoardBarrier(k coll.Call) error {
	v := k.View.(*Comm)
	e := v.e
	b := e.board
	if !e.politely {
		return collBoardExchange(k, nil)
	}
	if err := e.boardBegin(v, b, k); err != nil {
		return err
	}
	part := b.post(k, nil)
	if v.rank != 0 {
		b.parts[0].Wake()
		return e.boardWait(v, b, k, part, 0)
	}
	if err := e.boardWait(v, b, k, part, -1); err != nil {
		return err
	}
	b.own.Release(boardWord(k.Tag, k.Check))
	for r, p := range b.parts {
		if r != e.rank {
			p.Wake()
		}
	}
	return nil
}

// boardBegin maps the boards at the first board call, and takes in the
// frames that wait, looking for messages of earlier collective calls that
// no receive took (stale), as collBegin did. A message-passing
// collective finds them the next time it receives, where a board call
// would leave them in the ring: a Bcast whose ranks named different
// roots would pass unnoticed until Finalize.
func (e *engine) boardBegin(v *Comm, b *board, k coll.Call) error {
	if b.parts == nil {
		e.mu.Lock()
		err := b.mapLocked(e)
		e.unlock()
		if err != nil {
			return boardError(v, k.Check, noPeer, err)
		}
	}
	if !e.mayProgress(1) {
		return nil
	}
	e.mu.Lock()
	e.progressLocked()
	var stale error
	if e.collUnexp.n.Load() != 0 {
		stale = e.staleLocked(v, k.Tag)
	}
	e.unlock()
	return stale
}

// post puts data on this rank's board as its part of call k, in the part
// whose turn it is, which it returns.
func (b *board) post(k coll.Call, data []byte) int {
	part := int(b.calls & 1)
	b.calls++
	b.own.Post(part, boardWord(k.Tag, k.Check), data)
	return part
}

// collBoardPart returns the BoardMax bytes of rank r's part of the board
// call this rank made last: what r posted, once collBoardExchange
// returned. It stays as it is until this rank's next board call.
func collBoardPart(k coll.Call, r int) []byte {
	v := k.View.(*Comm)
	b := v.e.board
	return b.parts[r].Data(int((b.calls - 1) & 1))
}

// look reports whether world rank r posted its part of call word in part
// i, or a mismatch.
func (b *board) look(v *Comm, r, i int, word uint64) (bool, error) {
	p := b.parts[r]
	if p.Word(i) == word {
		return true, nil
	}
	// The arrival word first, then the part's word again: r stores its
	// part's word before its arrival word, so an arrival at a later call
	// seen first means the part's word, loaded after, shows this call's
	// post if r made it. Loaded the other way round, r could post this
	// call and arrive at the next between the two loads.
	a := p.Arrival()
	w := p.Word(i)
	if w == word {
		return true, nil
	}
	g, check := boardGen(word), boardCheck(word)
	switch {
	case boardGen(w) == g:
		return false, boardMismatch(v, r, boardCheck(w), check)
	case later(boardGen(w), g):
		// Its part names a later call: r took the board at a call where
		// this rank did not, or the other way round.
		return false, boardSkipped(v, r, g, check)
	case boardGen(a) == g && boardCheck(a) != check:
		return false, boardMismatch(v, r, boardCheck(a), check)
	case later(boardGen(a), g):
		return false, boardSkipped(v, r, g, check)
	}
	return false, nil
}

// boardMismatch: rank r's word names this call with check word got.
func boardMismatch(v *Comm, r int, got, want uint32) error {
	return boardError(v, want, r, &MismatchError{Peer: r, Got: got, Want: want})
}

// boardSkipped: rank r went past call g without posting its part.
func boardSkipped(v *Comm, r int, g, want uint32) error {
	return boardError(v, want, r, fmt.Errorf("%w: rank %d went past collective call %d without posting its part of this %v: it called another collective there, or the same with other arguments",
		ErrMismatch, r, g, coll.KindOf(want)))
}

// boardWait waits until every rank posted its part of call k in part part
// (root < 0), or until rank root released the call (collBoardBarrier),
// polling as wait does: it makes progress meanwhile (revocations arrive
// as frames), gives the core away when ranks outnumber cores, and sleeps
// on the bell once idle long enough; posting ranks ring it (Board.Wake).
func (e *engine) boardWait(v *Comm, b *board, k coll.Call, part, root int) error {
	word := boardWord(k.Tag, k.Check)
	next := 0 // the ranks below next have posted
	if root >= 0 {
		next = root
	}
	ready := func() (bool, error) {
		if root >= 0 {
			if b.parts[root].Released() == word {
				return true, nil
			}
			_, err := b.look(v, root, part, word) // a mismatch, or nothing yet
			return false, err
		}
		for ; next < v.size; next++ {
			if next == v.rank {
				continue
			}
			ok, err := b.look(v, next, part, word)
			if !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	}
	var clock waitClock
	checkEvery := e.checkEvery()
	var err error
	for i := 1; ; i++ {
		var ok bool
		if ok, err = ready(); ok || err != nil {
			break
		}
		if e.revokedAny.Load() || e.dead.Load() {
			if err = e.boardFailure(v, k); err != nil {
				break
			}
		}
		if e.mayProgress(i) && e.mu.TryLock() {
			e.progressLocked()
			if e.collUnexp.n.Load() != 0 {
				err = e.boardMessageLocked(v, k)
			}
			e.unlock()
			if err != nil {
				break
			}
		}
		if e.politely && i > 1 {
			e.givePolitely(i, checkEvery)
		}
		if i&checkEvery != 0 {
			continue
		}
		if !clock.started {
			// "blocked in a shared-memory collective from rank 2,
			// barrier (collective call 7) on world": the first rank
			// whose part is missing.
			clock.begin(e, waitRecord{what: inBoard, peer: next, tag: k.Tag, ctx: v.ctx, check: k.Check})
			continue
		}
		if clock.turn(e, false) {
			e.sleep(func() bool {
				ok, err := ready()
				return ok || err != nil || e.revokedAny.Load()
			}, nil)
			clock.slept()
		}
	}
	clock.end(e)
	return err
}

// boardMessageLocked reports a message of call k that arrived while this
// rank waits for it on the board: its sender took messages where this
// rank took the board, which only ranks that disagree on the call (its
// check word differs) or on whether the world has a board do.
func (e *engine) boardMessageLocked(v *Comm, k coll.Call) error {
	q := e.queueIfAny(v.ctx)
	if q == nil {
		return nil
	}
	m := q.findUnexpected(AnySource, int32(k.Tag))
	if m == nil {
		return nil
	}
	peer := v.commRank(int(m.src))
	if m.check != k.Check {
		return boardMismatch(v, peer, m.check, k.Check) // "called allreduce with other arguments"
	}
	return boardError(v, k.Check, peer, fmt.Errorf("%w: rank %d sent a message of %v in this call, where this rank reads the others' parts in shared memory: they disagree on the call",
		ErrMismatch, peer, coll.KindOf(m.check)))
}

// boardFailure returns why call k can no longer complete: its
// communicator's collectives were revoked, or the world ended.
func (e *engine) boardFailure(v *Comm, k coll.Call) error {
	e.mu.Lock()
	defer e.unlock()
	why := e.revoked[v.ctx]
	if why == nil {
		why = e.cause
	}
	if why == nil {
		return nil
	}
	return boardError(v, k.Check, noPeer, why)
}

// boardError is err in a board call with check word check on view v,
// about rank peer (or noPeer).
func boardError(v *Comm, check uint32, peer int, err error) error {
	return &OpError{Op: coll.KindOf(check).String(), Comm: v.parent.name(), Rank: v.rank, Peer: peer, Tag: noPeer, Err: err}
}

// The board holds what the collectives may post.
var _ [shm.BoardMax - coll.BoardMax]struct{}
