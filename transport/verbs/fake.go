package verbs

import (
	"fmt"
	"sync"
)

// Fabric is an in-process stand-in for an RDMA network and its adapters,
// for tests of the protocol on machines without an adapter. It enforces
// what real adapters enforce, so that a protocol bug shows here as it
// would on hardware, as an error completion rather than silent success:
//
//   - memory-region bounds, keys and access flags on both ends (a send
//     from memory outside its region is a local protection error, a read
//     with a key the peer never gave or outside its region a remote
//     access error);
//   - receiver not ready: a send that finds no receive posted fails
//     (queue pairs are configured with no RNR retries, as the transport's
//     credits must make that impossible), and so does one larger than the
//     receive buffer;
//   - completion-queue overflow: a completion that finds the queue full
//     is lost, the queue reports ErrCQOverflow and its queue pairs fail;
//   - the error state: after a failed work request a queue pair flushes
//     every receive still posted and every later request with
//     WRFlushErr;
//   - a peer whose adapter closed never answers: sends and reads to it
//     fail with RetryExceeded.
//
// One lock serializes the whole fabric; data moves by copy under it.
type Fabric struct {
	mu      sync.Mutex
	wakes   []func() // completion-queue wake calls due, made by unlock
	nextLID uint16
	nextKey uint32
	qps     map[qpKey]*fakeQP
}

// unlock releases the fabric and then makes the wake calls its
// completions asked for (a wake rings a rank's bell: not under the lock).
func (f *Fabric) unlock() {
	wakes := f.wakes
	f.wakes = nil
	f.mu.Unlock()
	for _, w := range wakes {
		w()
	}
}

type qpKey struct {
	lid uint16
	qpn uint32
}

// NewFabric returns an empty fabric.
func NewFabric() *Fabric {
	return &Fabric{nextLID: 1, nextKey: 0x1000, qps: make(map[qpKey]*fakeQP)}
}

// Open adds an adapter with one active port to the fabric.
func (f *Fabric) Open(name string) *FakeDevice {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &FakeDevice{f: f, name: name, lid: f.nextLID, mrs: make(map[uint32]*MR)}
	f.nextLID++
	return d
}

// FakeDevice is one adapter of a Fabric.
type FakeDevice struct {
	f        *Fabric
	name     string
	lid      uint16
	nextQPN  uint32
	mrs      map[uint32]*MR // by lkey and by rkey (distinct numbers)
	bufs     map[*MR][]byte
	qps      []*fakeQP
	closed   bool
	PortDown bool // tests: the port is not active
}

var _ Device = (*FakeDevice)(nil)

func (d *FakeDevice) Name() string { return d.name }

func (d *FakeDevice) Port() (PortAttr, error) {
	if d.PortDown {
		return PortAttr{}, fmt.Errorf("%s: %w (port 1 is down)", d.name, ErrPortDown)
	}
	return PortAttr{Num: 1, LID: d.lid, MTU: 4096}, nil
}

func (d *FakeDevice) Register(buf []byte, access Access) (*MR, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%s: register: device closed", d.name)
	}
	if len(buf) == 0 {
		return nil, fmt.Errorf("%s: register: empty buffer", d.name)
	}
	mr := &MR{Addr: addrOf(buf), Len: len(buf), LKey: d.f.nextKey, RKey: d.f.nextKey + 1, Access: access}
	d.f.nextKey += 2
	mr.handle = buf
	d.mrs[mr.LKey] = mr
	if access&RemoteRead != 0 {
		d.mrs[mr.RKey] = mr
	}
	return mr, nil
}

func (d *FakeDevice) Deregister(mr *MR) error {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if d.mrs[mr.LKey] != mr {
		return fmt.Errorf("%s: deregister: region not registered", d.name)
	}
	delete(d.mrs, mr.LKey)
	delete(d.mrs, mr.RKey)
	return nil
}

// span returns the bytes [addr, addr+n) of the region key names, if it
// is one of d's, allows need, and holds them. Called with f.mu held.
func (d *FakeDevice) span(key uint32, remote bool, addr uint64, n int, need Access) ([]byte, bool) {
	mr := d.mrs[key]
	if mr == nil || (remote && mr.RKey != key) || (!remote && mr.LKey != key) || mr.Access&need != need {
		return nil, false
	}
	if addr < mr.Addr || n < 0 || addr+uint64(n) > mr.Addr+uint64(mr.Len) {
		return nil, false
	}
	buf := mr.handle.([]byte)
	off := addr - mr.Addr
	return buf[off : off+uint64(n)], true
}

func (d *FakeDevice) NewCQ(depth int, wake func()) (CQ, error) {
	if depth < 1 {
		return nil, fmt.Errorf("%s: completion queue of %d entries", d.name, depth)
	}
	return &fakeCQ{f: d.f, depth: depth, wake: wake}, nil
}

func (d *FakeDevice) NewQP(cq CQ, caps QPCaps) (QP, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%s: create queue pair: device closed", d.name)
	}
	fc, ok := cq.(*fakeCQ)
	if !ok {
		return nil, fmt.Errorf("%s: create queue pair: not this fabric's completion queue", d.name)
	}
	d.nextQPN++
	q := &fakeQP{d: d, cq: fc, caps: caps, qpn: d.nextQPN, psn: d.nextQPN * 7919 & 0xffffff}
	fc.qps = append(fc.qps, q)
	d.qps = append(d.qps, q)
	d.f.qps[qpKey{d.lid, q.qpn}] = q
	return q, nil
}

// Close destroys the adapter's queue pairs: peers talking to them get no
// answer (RetryExceeded), as from a host that went away.
func (d *FakeDevice) Close() error {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for _, q := range d.qps {
		delete(d.f.qps, qpKey{d.lid, q.qpn})
		q.gone = true
	}
	d.mrs = map[uint32]*MR{}
	return nil
}

type fakeCQ struct {
	f        *Fabric
	depth    int
	wcs      []WC
	armed    bool
	overflow bool
	wake     func()
	qps      []*fakeQP
}

// add queues a completion; its wake, if armed, runs at f.unlock. Called
// with f.mu held.
func (c *fakeCQ) add(wc WC) {
	if c.overflow {
		return
	}
	if len(c.wcs) >= c.depth {
		c.overflow = true
		for _, q := range c.qps {
			q.toError()
		}
		return
	}
	c.wcs = append(c.wcs, wc)
	if c.armed {
		c.armed = false
		c.f.wakes = append(c.f.wakes, c.wake)
	}
}

func (c *fakeCQ) Poll(wcs []WC) (int, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.overflow {
		return 0, ErrCQOverflow
	}
	n := copy(wcs, c.wcs)
	c.wcs = append(c.wcs[:0], c.wcs[n:]...)
	for i := range wcs[:n] {
		if q := wcs[i].fakeQP; q != nil {
			q.sends-- // a polled completion frees its send-queue entry
			wcs[i].fakeQP = nil
		}
	}
	return n, nil
}

func (c *fakeCQ) Arm() error {
	c.f.mu.Lock()
	c.armed = true
	c.f.mu.Unlock()
	return nil
}

func (c *fakeCQ) Close() error { return nil }

type qpState uint8

const (
	qpReset qpState = iota
	qpRTS
	qpError
)

type fakeQP struct {
	d      *FakeDevice
	cq     *fakeCQ
	caps   QPCaps
	qpn    uint32
	psn    uint32
	state  qpState
	remote Endpoint
	recvs  []RecvWR
	sends  int // send work requests outstanding (all complete at once here)
	gone   bool
}

func (q *fakeQP) Local() Endpoint { return Endpoint{LID: q.d.lid, QPN: q.qpn, PSN: q.psn} }

func (q *fakeQP) Connect(remote Endpoint) error {
	q.d.f.mu.Lock()
	defer q.d.f.mu.Unlock()
	switch {
	case q.state == qpRTS && q.remote == remote:
		return nil
	case q.state != qpReset:
		return fmt.Errorf("queue pair %d: connect to %d in state %d", q.qpn, remote.QPN, q.state)
	}
	q.remote, q.state = remote, qpRTS
	return nil
}

// toError moves q to the error state, flushing its receives. Called with
// f.mu held.
func (q *fakeQP) toError() {
	if q.state == qpError {
		return
	}
	q.state = qpError
	for _, r := range q.recvs {
		q.cq.add(WC{ID: r.ID, Status: WRFlushErr, Op: OpRecv})
	}
	q.recvs = nil
}

func (q *fakeQP) PostRecv(wr RecvWR) error {
	f := q.d.f
	f.mu.Lock()
	defer f.unlock()
	if q.gone {
		return fmt.Errorf("queue pair %d: destroyed", q.qpn)
	}
	if len(q.recvs) >= q.caps.RecvDepth {
		return fmt.Errorf("queue pair %d: receive queue full (%d)", q.qpn, q.caps.RecvDepth)
	}
	if q.state == qpError {
		q.cq.add(WC{ID: wr.ID, Status: WRFlushErr, Op: OpRecv})
		return nil
	}
	q.recvs = append(q.recvs, wr)
	return nil
}

// PostSend carries out a send or a read at once: the data moves and both
// ends' completions are queued before it returns.
func (q *fakeQP) PostSend(wr SendWR) error {
	f := q.d.f
	f.mu.Lock()
	defer f.unlock()
	complete := func(c *fakeCQ, wc WC) {
		if wc.Op != OpRecv {
			wc.fakeQP = q
		}
		c.add(wc)
	}
	fail := func(st Status) {
		complete(q.cq, WC{ID: wr.ID, Status: st, Op: wr.Op})
		q.toError()
	}
	switch {
	case q.gone:
		return fmt.Errorf("queue pair %d: destroyed", q.qpn)
	case q.state == qpReset:
		return fmt.Errorf("queue pair %d: %w", q.qpn, ErrQPState)
	case q.sends >= q.caps.SendDepth:
		return fmt.Errorf("queue pair %d: send queue full (%d outstanding)", q.qpn, q.sends)
	}
	q.sends++
	if q.state == qpError {
		complete(q.cq, WC{ID: wr.ID, Status: WRFlushErr, Op: wr.Op})
		return nil
	}
	peer := f.qps[qpKey{q.remote.LID, q.remote.QPN}]
	switch wr.Op {
	case OpSend:
		src, ok := q.d.span(wr.LKey, false, wr.Addr, wr.Len, 0)
		if !ok {
			fail(LocalProtErr)
			return nil
		}
		if peer == nil || peer.state != qpRTS {
			fail(RetryExceeded)
			return nil
		}
		if len(peer.recvs) == 0 {
			fail(RNRRetryExceeded)
			return nil
		}
		r := peer.recvs[0]
		peer.recvs = peer.recvs[1:]
		dst, ok := peer.d.span(r.LKey, false, r.Addr, r.Len, LocalWrite)
		if !ok || len(dst) < len(src) {
			st := LocalLenErr
			if !ok {
				st = LocalProtErr
			}
			complete(peer.cq, WC{ID: r.ID, Status: st, Op: OpRecv})
			peer.toError()
			fail(RemoteInvReqErr)
			return nil
		}
		copy(dst, src)
		complete(peer.cq, WC{ID: r.ID, Status: Success, Op: OpRecv, Len: len(src)})
		complete(q.cq, WC{ID: wr.ID, Status: Success, Op: OpSend})
	case OpRead:
		dst, ok := q.d.span(wr.LKey, false, wr.Addr, wr.Len, LocalWrite)
		if !ok {
			fail(LocalProtErr)
			return nil
		}
		if peer == nil || peer.state != qpRTS {
			fail(RetryExceeded)
			return nil
		}
		src, ok := peer.d.span(wr.RKey, true, wr.RemoteAddr, wr.Len, RemoteRead)
		if !ok {
			fail(RemoteAccessErr)
			return nil
		}
		copy(dst, src)
		complete(q.cq, WC{ID: wr.ID, Status: Success, Op: OpRead})
	default:
		return fmt.Errorf("queue pair %d: opcode %d", q.qpn, wr.Op)
	}
	return nil
}

func (q *fakeQP) Close() error {
	f := q.d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.qps, qpKey{q.d.lid, q.qpn})
	q.gone = true
	return nil
}
