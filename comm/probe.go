package comm

// probe makes progress once and looks for a waiting message from world
// rank src (or AnySource) with tag on ctx.
func (e *engine) probe(c *Comm, src, tag int, ctx uint32) (Status, bool, error) {
	e.mu.Lock()
	defer e.unlock()
	e.progressLocked()
	if e.cause != nil {
		return Status{}, false, &OpError{Op: "probe", Comm: c.name(), Rank: c.rank, Peer: c.commRank(src), Tag: tag, Err: e.cause}
	}
	m := e.queue(ctx).findUnexpected(int32(src), int32(tag))
	if m == nil {
		return Status{}, false, nil
	}
	return Status{Source: c.commRank(int(m.src)), Tag: int(m.tag), Count: m.size}, true, nil
}
