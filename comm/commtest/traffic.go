package commtest

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sync"

	"github.com/parley-hpc/parley/comm"
)

// Traffic is a random exchange among the ranks of a world, checked against
// MPI's matching rules: every message arrives exactly once and intact, and
// no message overtakes an earlier one from the same sender that the same
// receive would have accepted. Every rank runs it with the same seed; the
// plan (who sends what to whom) follows from the seed, the outcome of the
// wildcards from timing, and the check accepts any outcome MPI allows.
type Traffic struct {
	Seed     uint64
	Messages int // per ordered pair of ranks
	MaxSize  int // largest message; a few messages are this large
}

type msg struct {
	src, dst, seq int // seq: index among src's messages to dst
	tag, size     int
}

func (tr Traffic) plan(n int) [][]msg {
	rng := rand.New(rand.NewPCG(tr.Seed, 99))
	in := make([][]msg, n) // by destination
	for s := 0; s < n; s++ {
		for d := 0; d < n; d++ {
			for k := 0; k < tr.Messages; k++ {
				size := rng.IntN(64)
				switch rng.IntN(20) {
				case 0:
					size = tr.MaxSize
				case 1, 2:
					size = rng.IntN(tr.MaxSize + 1)
				case 3:
					size = 0
				}
				in[d] = append(in[d], msg{src: s, dst: d, seq: k, tag: rng.IntN(4), size: size})
			}
		}
	}
	return in
}

// fill writes the payload of m.
func fill(b []byte, m msg) {
	x := uint32(m.src*7919 + m.dst*104729 + m.seq*13)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
}

// Run runs the exchange on c and returns an error describing the first
// violation. A sender goroutine and a receiver goroutine share c, so this
// also exercises concurrent use of one communicator.
func (tr Traffic) Run(c *comm.Comm) error {
	n, me := c.Size(), c.Rank()
	in := tr.plan(n)
	var wg sync.WaitGroup
	var sendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sendErr = tr.send(c, in)
	}()
	recvErr := tr.receive(c, in[me])
	if recvErr != nil {
		// Report at once: the peers' senders may now wait forever.
		return recvErr
	}
	wg.Wait()
	if sendErr != nil {
		return sendErr
	}
	return recvErr
}

func (tr Traffic) send(c *comm.Comm, in [][]msg) error {
	me := c.Rank()
	rng := rand.New(rand.NewPCG(tr.Seed, uint64(me)+1000))
	var reqs []*comm.Request
	// Messages to each destination go in plan order; destinations interleave.
	next := make([]int, c.Size())
	for {
		var ds []int
		for d := range next {
			for next[d] < len(in[d]) && in[d][next[d]].src != me {
				next[d]++
			}
			if next[d] < len(in[d]) {
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			break
		}
		d := ds[rng.IntN(len(ds))]
		m := in[d][next[d]]
		next[d]++
		buf := make([]byte, m.size)
		fill(buf, m)
		switch {
		case m.size <= 1024 && rng.IntN(2) == 0:
			// Small blocking sends complete without the receiver.
			if err := c.Send(buf, d, m.tag); err != nil {
				return err
			}
		case rng.IntN(8) == 0:
			reqs = append(reqs, c.Issend(buf, d, m.tag))
		default:
			reqs = append(reqs, c.Isend(buf, d, m.tag))
		}
		if len(reqs) > 16 && rng.IntN(4) == 0 {
			// Test, not wait: a synchronous or rendezvous send completes
			// only once the receiver gets to it, which may be after it has
			// waited for a message this loop has not sent yet.
			if done, err := comm.Testall(reqs...); err != nil {
				return err
			} else if done {
				reqs = reqs[:0]
			}
		}
	}
	if DebugHook != nil {
		DebugHook(reqs)
	}
	_, err := comm.Waitall(reqs...)
	return err
}

// DebugHook, if set, sees the sender's last requests before it waits.
var DebugHook func([]*comm.Request)

// posted is a receive of the receiver's model.
type posted struct {
	order    int // posting order
	src, tag int // filter (AnySource / AnyTag allowed)
	req      *comm.Request
	buf      []byte
	target   msg
}

func accepts(p *posted, m msg) bool {
	return (p.src == comm.AnySource || p.src == m.src) && (p.tag == comm.AnyTag || p.tag == m.tag)
}

func (tr Traffic) receive(c *comm.Comm, incoming []msg) error {
	rng := rand.New(rand.NewPCG(tr.Seed, uint64(c.Rank())+2000))
	remaining := map[[2]int]msg{} // (src, seq) -> message not yet received
	for _, m := range incoming {
		remaining[[2]int{m.src, m.seq}] = m
	}
	// matched[src] lists, by sender seq, the posting order of the receive
	// that took it (-1: not yet).
	matched := map[int]map[int]int{}
	var done []*posted
	order := 0
	for len(remaining) > 0 {
		// Choose up to k targets and filters that cannot steal each
		// other's targets (so every receive is sure to complete).
		k := 1 + rng.IntN(4)
		var batch []*posted
		targets := make([]msg, 0, len(remaining))
		for _, m := range remaining {
			targets = append(targets, m)
		}
		rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		for _, t := range targets {
			if len(batch) == k {
				break
			}
			p := &posted{src: t.src, tag: t.tag, target: t}
			switch rng.IntN(4) {
			case 1:
				p.src = comm.AnySource
			case 2:
				p.tag = comm.AnyTag
			case 3:
				p.src, p.tag = comm.AnySource, comm.AnyTag
			}
			ok := true
			for _, q := range batch {
				if accepts(p, q.target) || accepts(q, t) {
					ok = false
					break
				}
			}
			if ok {
				batch = append(batch, p)
			}
		}
		for _, p := range batch {
			// The receive may take any remaining message it accepts (an
			// earlier one of the same sender and tag comes first).
			size := 0
			for _, m := range remaining {
				if accepts(p, m) {
					size = max(size, m.size)
				}
			}
			p.buf = make([]byte, size)
			p.order = order
			order++
			if rng.IntN(3) == 0 && len(batch) == 1 {
				st, err := c.Recv(p.buf, p.src, p.tag)
				if err != nil {
					return err
				}
				if err := tr.record(p, st, remaining, matched); err != nil {
					return err
				}
				done = append(done, p)
				continue
			}
			p.req = c.Irecv(p.buf, p.src, p.tag)
		}
		for _, p := range batch {
			if p.req == nil {
				continue
			}
			st, err := p.req.Wait()
			if err != nil {
				return err
			}
			if err := tr.record(p, st, remaining, matched); err != nil {
				return err
			}
			done = append(done, p)
		}
	}
	return checkOrder(done, incoming, matched)
}

// record checks a completed receive's message and marks it received.
func (tr Traffic) record(p *posted, st comm.Status, remaining map[[2]int]msg, matched map[int]map[int]int) error {
	if p.src != comm.AnySource && st.Source != p.src || p.tag != comm.AnyTag && st.Tag != p.tag {
		return fmt.Errorf("receive (src %d, tag %d) got a message from %d with tag %d", p.src, p.tag, st.Source, st.Tag)
	}
	// Which message was it? The first remaining one from that source, tag
	// and size; the payload says which sequence number.
	var got *msg
	for _, m := range remaining {
		if m.src == st.Source && m.tag == st.Tag && m.size == st.Count {
			want := make([]byte, m.size)
			fill(want, m)
			if crc32.ChecksumIEEE(want) == crc32.ChecksumIEEE(p.buf[:st.Count]) {
				mm := m
				if got == nil || mm.seq < got.seq {
					got = &mm
				}
			}
		}
	}
	if got == nil {
		return fmt.Errorf("receive (src %d, tag %d) got %d bytes from %d, tag %d, that match no message still due (corrupt or duplicate)",
			p.src, p.tag, st.Count, st.Source, st.Tag)
	}
	delete(remaining, [2]int{got.src, got.seq})
	if matched[got.src] == nil {
		matched[got.src] = map[int]int{}
	}
	matched[got.src][got.seq] = p.order
	p.target = *got
	return nil
}

// checkOrder verifies non-overtaking: if receive r took message m from
// sender s, every earlier message from s that r would have accepted was
// taken by a receive posted before r.
func checkOrder(done []*posted, incoming []msg, matched map[int]map[int]int) error {
	for _, r := range done {
		m := r.target
		for _, e := range incoming {
			if e.src != m.src || e.seq >= m.seq || !accepts(r, e) {
				continue
			}
			if o := matched[e.src][e.seq]; o > r.order {
				return fmt.Errorf("message %d from rank %d (tag %d) overtook message %d (tag %d): receive #%d (src %d, tag %d) took the later one",
					m.seq, m.src, m.tag, e.seq, e.tag, r.order, r.src, r.tag)
			}
		}
	}
	return nil
}
