package comm

import (
	"fmt"
	"sync/atomic"
	"time"
)

// blockedRecord says what the rank is blocked in, for the hang report that
// mpirun prints when --timeout ends a job. It is written when a wait has
// lasted a little while (not on the fast path) with a few atomic stores.
type blockedRecord struct {
	op    atomic.Uint32 // 0: not blocked; else a blockedOp
	peer  atomic.Int64  // world rank, or AnySource
	tag   atomic.Int64
	ctx   atomic.Uint32
	since atomic.Int64 // unix nanoseconds
}

const (
	blockedNone uint32 = iota
	blockedSend
	blockedRecv
	blockedOther
)

func (b *blockedRecord) set(r *Request, since time.Time) {
	switch r.kind {
	case reqRecv:
		b.op.Store(blockedRecv)
		b.peer.Store(int64(r.src))
		b.tag.Store(int64(r.tag))
		b.ctx.Store(r.ctx)
	default:
		b.op.Store(blockedSend)
		b.peer.Store(int64(r.dest))
		b.tag.Store(int64(r.tag))
		b.ctx.Store(r.ctx)
	}
	b.since.Store(since.UnixNano())
}

func (b *blockedRecord) clear() { b.op.Store(blockedNone) }

// describe renders the record for a hang report.
func (b *blockedRecord) describe() string {
	op := b.op.Load()
	if op == blockedNone {
		return "running (not blocked in a parley call)"
	}
	peer, tag, ctx := b.peer.Load(), b.tag.Load(), b.ctx.Load()
	since := time.Since(time.Unix(0, b.since.Load())).Round(time.Millisecond)
	var what string
	switch op {
	case blockedSend:
		what = fmt.Sprintf("send to rank %d", peer)
	case blockedRecv:
		if peer == AnySource {
			what = "recv from any rank"
		} else {
			what = fmt.Sprintf("recv from rank %d", peer)
		}
	default:
		what = "wait"
	}
	tagS := fmt.Sprint(tag)
	if tag == AnyTag {
		tagS = "any"
	}
	kind := "point-to-point"
	switch ctx % ctxStride {
	case ctxColl:
		kind = "collective"
	case ctxInternal:
		kind = "communicator management"
	}
	return fmt.Sprintf("blocked in %s, tag %s, %s context %d, for %v", what, tagS, kind, ctx/ctxStride, since)
}

// report returns the description and the world rank waited on (-1 for
// none or any).
func (b *blockedRecord) report() (string, int) {
	peer := -1
	if b.op.Load() != blockedNone {
		peer = int(b.peer.Load())
	}
	return b.describe(), peer
}
