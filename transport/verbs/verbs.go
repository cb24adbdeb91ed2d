package verbs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/wire"
	"github.com/parley-hpc/parley/transport"
)

// Protocol sizes.
const (
	// DefaultSlots is the number of eager receive buffers each rank posts
	// for each peer it talks to, and so the sender's credits.
	DefaultSlots = 32
	// DefaultSlotSize is the size of one eager buffer: the credit word,
	// the frame header and up to MaxFrame bytes of payload.
	DefaultSlotSize = 16 << 10
	slotHdrLen      = 8 // credits returned (4), flags (4)
	flagFrame       = 1 // the slot carries a frame, not only credits
	maxReads        = 16
	maxReadChunk    = 1 << 30 // below every adapter's largest message
	regCacheLimit   = 256 << 20
	roleVerbs       = 'v'
	endpointLen     = 2 + 16 + 4 + 4
	descLen         = 8 + 8 + 4 // address, length, rkey
	ackConnected    = 'C'       // the dialer's queue pair is connected
)

// Work request ids: a kind in the top byte, a slot or read number below.
const (
	idSend = 1 << 56
	idRecv = 2 << 56
	idRead = 3 << 56
	idMask = 1<<56 - 1
)

// Config configures a rank's verbs transport.
type Config struct {
	Rank   int
	JobID  string
	Secret []byte
	// Device is the adapter: Open's (libibverbs) or a Fabric's (tests).
	// The transport closes it.
	Device Device
	// Listen is the host:port of the connection-setup listener ("": all
	// interfaces, any port); Advertise is the host peers dial.
	Listen, Advertise string
	// Bell is rung when a completion or a connection arrives while the
	// rank sleeps.
	Bell transport.Bell
	// Slots and SlotSize size the eager buffers per peer (0: defaults).
	Slots, SlotSize int
	// DialTimeout bounds connection setup (default 30 s).
	DialTimeout time.Duration
	Logger      *zap.Logger
}

// Transport is one rank's verbs endpoint: an adapter port, one
// reliable-connected queue pair per peer it talks to, and a TCP listener
// through which peers set the queue pairs up.
//
// Concurrency: Send, Poll, Arm, Pending and Close are called by the
// owner's progress loop, one at a time (comm holds its engine lock); Read
// may run at the same time (transport.RemoteReader). The setup goroutines
// touch peers only under mu, or through arrivals.
type Transport struct {
	cfg     Config
	log     *zap.Logger
	dev     Device
	port    PortAttr
	ln      net.Listener
	addr    string
	cache   *regCache
	gate    *wire.Gate
	closeCh chan struct{}
	closed  atomic.Bool
	wg      sync.WaitGroup

	mu       sync.Mutex
	peers    map[int]*peer
	addrs    map[int]string
	conns    []net.Conn
	arrivals []arrival
	pending  atomic.Bool // len(arrivals) > 0

	// Owned by the progress loop.
	known   map[int]*peer // peers Send has looked up: no lock after the first
	active  []*peer
	nqueued int // peers with frames queued
	dialing int // peers whose setup is under way with frames for them
	wcs     []WC
	batch   []WC
	hd      transport.Header
}

var _ interface {
	transport.Transport
	transport.Armer
	transport.RemoteReader
} = (*Transport)(nil)

// peer is the link to one rank.
type peer struct {
	rank             int
	qp               QP
	cq               CQ
	recvBuf, sendBuf []byte
	recvMR, sendMR   *MR
	connectMu        sync.Mutex
	ready            atomic.Bool // connected: Read may use the queue pair
	lost             atomic.Pointer[error]

	// Owned by the progress loop.
	up       bool
	dialed   bool
	failed   error
	freeSend []int
	credits  int // receive buffers the peer has posted that this rank may fill
	owed     int // buffers this rank re-posted whose credit it has not returned
	queue    transport.OpQueue

	// Completions polled by Read that belong to Poll, and Read's own.
	cqMu    sync.Mutex
	stash   []WC
	readSeq uint64
	reads   map[uint64]*readWait
	readSem chan struct{}
}

type readWait struct {
	done bool
	st   Status
}

type arrival struct {
	p    *peer
	conn net.Conn
	err  error
}

// New starts a verbs transport on cfg.Device's first active port.
func New(cfg Config) (*Transport, error) {
	if cfg.Device == nil {
		return nil, fmt.Errorf("verbs: %w", ErrNoDevice)
	}
	if cfg.Slots <= 0 {
		cfg.Slots = DefaultSlots
	}
	if cfg.SlotSize <= 0 {
		cfg.SlotSize = DefaultSlotSize
	}
	if cfg.SlotSize < slotHdrLen+transport.HeaderLen+64 || cfg.Slots < 4 {
		return nil, fmt.Errorf("verbs: %d slots of %d bytes are too few or too small", cfg.Slots, cfg.SlotSize)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	port, err := cfg.Device.Port()
	if err != nil {
		cfg.Device.Close()
		return nil, fmt.Errorf("verbs: %s: %w", cfg.Device.Name(), err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		cfg.Device.Close()
		return nil, fmt.Errorf("verbs: connection-setup listener: %w", err)
	}
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	t := &Transport{cfg: cfg, log: log, dev: cfg.Device, port: port, ln: ln, addr: net.JoinHostPort(cfg.Advertise, p),
		cache: newRegCache(cfg.Device, regCacheLimit), gate: wire.NewGate(), closeCh: make(chan struct{}),
		peers: make(map[int]*peer), addrs: make(map[int]string), known: make(map[int]*peer), wcs: make([]WC, 64)}
	t.wg.Add(1)
	go t.acceptLoop()
	log.Debug("verbs transport up", zap.String("device", cfg.Device.Name()), zap.Int("port", port.Num),
		zap.Uint16("lid", port.LID), zap.String("setup", t.addr))
	return t, nil
}

// MaxFrame is the largest payload of one frame: what an eager buffer
// holds after the credit word and the header.
func (t *Transport) MaxFrame() int { return t.cfg.SlotSize - slotHdrLen - transport.HeaderLen }

// Caps reports what this transport does.
func (t *Transport) Caps() transport.Caps {
	return transport.Caps{Name: "verbs", EagerLimit: t.MaxFrame(), MaxFrame: t.MaxFrame(), RemoteRead: true, Registers: true}
}

// Addr is the connection-setup listener's address, published in the
// rank's card.
func (t *Transport) Addr() string { return t.addr }

// Reach records where peer sets up connections; the queue pair is made on
// the first Send.
func (t *Transport) Reach(rank int, addr string, pid int) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("verbs: rank %d's address %q: %w", rank, addr, err)
	}
	t.mu.Lock()
	t.addrs[rank] = addr
	t.mu.Unlock()
	return nil
}

// peerLocked returns the link to rank, making its queue pair, buffers and
// posted receives on first use. Called with mu held.
func (t *Transport) peerLocked(rank int) (*peer, error) {
	if p := t.peers[rank]; p != nil {
		return p, nil
	}
	n, size := t.cfg.Slots, t.cfg.SlotSize
	p := &peer{rank: rank, recvBuf: make([]byte, n*size), sendBuf: make([]byte, n*size), credits: n,
		reads: make(map[uint64]*readWait), readSem: make(chan struct{}, maxReads)}
	var err error
	if p.recvMR, err = t.cache.get(p.recvBuf, LocalWrite); err != nil {
		return nil, fmt.Errorf("register receive buffers: %w", err)
	}
	if p.sendMR, err = t.cache.get(p.sendBuf, 0); err != nil {
		return nil, fmt.Errorf("register send buffers: %w", err)
	}
	if p.cq, err = t.dev.NewCQ(2*n+maxReads+8, t.cfg.Bell.Ring); err != nil {
		return nil, fmt.Errorf("create completion queue: %w", err)
	}
	if p.qp, err = t.dev.NewQP(p.cq, QPCaps{SendDepth: n + maxReads, RecvDepth: n}); err != nil {
		return nil, fmt.Errorf("create queue pair: %w", err)
	}
	for i := range n {
		if err := t.postRecv(p, i); err != nil {
			return nil, err
		}
		p.freeSend = append(p.freeSend, i)
	}
	t.peers[rank] = p
	return p, nil
}

func (t *Transport) postRecv(p *peer, slot int) error {
	size := t.cfg.SlotSize
	return p.qp.PostRecv(RecvWR{ID: idRecv | uint64(slot), Addr: p.recvMR.Addr + uint64(slot*size), Len: size, LKey: p.recvMR.LKey})
}

// Send queues op for rank. Its payload is copied into a registered buffer
// when the peer has a receive buffer free (a credit), so op completes
// then; before the link is up, or without credit, it waits in order.
func (t *Transport) Send(rank int, op *transport.SendOp) {
	op.Reset()
	if t.closed.Load() {
		op.Complete(fmt.Errorf("verbs send to rank %d: %w", rank, transport.ErrClosed))
		return
	}
	if len(op.Payload) > t.MaxFrame() {
		op.Complete(fmt.Errorf("verbs send to rank %d: frame of %d bytes exceeds %d", rank, len(op.Payload), t.MaxFrame()))
		return
	}
	p := t.known[rank]
	if p == nil {
		t.mu.Lock()
		var err error
		p, err = t.peerLocked(rank)
		t.mu.Unlock()
		if err != nil {
			op.Complete(&transport.PeerError{Rank: rank, Op: "connect to", Err: err})
			return
		}
		t.known[rank] = p
	}
	if p.failed != nil {
		op.Complete(p.failed)
		return
	}
	if !p.up && !p.dialed {
		p.dialed = true
		t.dialing++
		t.mu.Lock()
		addr := t.addrs[rank]
		t.mu.Unlock()
		t.wg.Add(1)
		go t.dial(p, addr)
	}
	if p.up && p.queue.Empty() {
		ok, err := t.trySend(p, &op.Header, op.Payload, true)
		if err != nil {
			op.Complete(t.failPeer(p, err))
			return
		}
		if ok {
			op.Complete(nil)
			return
		}
	}
	if p.queue.Empty() {
		t.nqueued++
	}
	p.queue.Push(op)
}

// trySend writes a frame (or, with data false, only the credits owed)
// into a free send buffer and posts it, if the peer has room: a data
// frame keeps one credit back, so that credits can always be returned.
func (t *Transport) trySend(p *peer, h *transport.Header, payload []byte, data bool) (bool, error) {
	need := 1
	if data {
		need = 2
	}
	if p.credits < need || len(p.freeSend) == 0 {
		return false, nil
	}
	slot := p.freeSend[len(p.freeSend)-1]
	p.freeSend = p.freeSend[:len(p.freeSend)-1]
	size := t.cfg.SlotSize
	b := p.sendBuf[slot*size : (slot+1)*size]
	binary.LittleEndian.PutUint32(b[0:], uint32(p.owed))
	n := slotHdrLen
	if data {
		binary.LittleEndian.PutUint32(b[4:], flagFrame)
		wire.PutHeader(b[slotHdrLen:], h)
		n += transport.HeaderLen + copy(b[slotHdrLen+transport.HeaderLen:], payload)
	} else {
		binary.LittleEndian.PutUint32(b[4:], 0)
	}
	err := p.qp.PostSend(SendWR{ID: idSend | uint64(slot), Op: OpSend, Addr: p.sendMR.Addr + uint64(slot*size), Len: n, LKey: p.sendMR.LKey})
	if err != nil {
		p.freeSend = append(p.freeSend, slot)
		return false, fmt.Errorf("post send: %w", err)
	}
	p.credits--
	p.owed = 0
	return true, nil
}

// push sends what waits for p, then returns credits if many are owed and
// no frame will carry them soon.
func (t *Transport) push(p *peer) (int, error) {
	n := 0
	had := !p.queue.Empty()
	for op := p.queue.Head(); op != nil; op = p.queue.Head() {
		ok, err := t.trySend(p, &op.Header, op.Payload, true)
		if err != nil {
			return n, err
		}
		if !ok {
			break
		}
		p.queue.Pop()
		op.Complete(nil)
		n++
	}
	if had && p.queue.Empty() {
		t.nqueued--
	}
	if p.owed >= t.cfg.Slots/2 && p.queue.Empty() {
		if _, err := t.trySend(p, nil, nil, false); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Poll installs links that came up, hands arrived frames to h, frees send
// buffers, and pushes queued frames. It returns the first link failure.
func (t *Transport) Poll(h transport.Handler) (int, error) {
	if t.closed.Load() {
		return 0, nil
	}
	n := 0
	var first error
	note := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	var later []arrival
	if t.pending.Load() {
		t.mu.Lock()
		as := t.arrivals
		t.arrivals = nil
		t.pending.Store(false)
		t.mu.Unlock()
		for _, a := range as {
			if a.err != nil {
				later = append(later, a) // after the frames that came before it
				continue
			}
			n++
			if !a.p.up && a.p.failed == nil {
				a.p.up = true
				a.p.ready.Store(true)
				t.active = append(t.active, a.p)
				if a.p.dialed {
					t.dialing--
				}
			}
			if a.conn != nil {
				t.watch(a.p, a.conn)
			}
		}
	}
	for i := 0; i < len(t.active); i++ {
		p := t.active[i]
		k, err := t.pollPeer(p, h)
		n += k
		if err != nil {
			note(t.failPeer(p, err))
			i-- // failPeer removed it
		}
	}
	for _, a := range later {
		if a.p.failed == nil {
			note(t.failPeer(a.p, a.err))
		}
	}
	return n, first
}

// pollPeer handles p's completions.
func (t *Transport) pollPeer(p *peer, h transport.Handler) (int, error) {
	p.cqMu.Lock()
	k, err := p.cq.Poll(t.wcs)
	t.batch = append(t.batch[:0], p.stash...)
	p.stash = p.stash[:0]
	for _, wc := range t.wcs[:k] {
		if wc.ID&^idMask == idRead {
			if w := p.reads[wc.ID&idMask]; w != nil {
				w.done, w.st = true, wc.Status
			}
			continue
		}
		t.batch = append(t.batch, wc)
	}
	p.cqMu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, wc := range t.batch {
		if wc.Status != Success {
			return n, fmt.Errorf("work completion: %s", wc.Status)
		}
		slot := int(wc.ID & idMask)
		switch wc.ID &^ idMask {
		case idSend:
			p.freeSend = append(p.freeSend, slot)
		case idRecv:
			if err := t.receive(p, slot, wc.Len, h); err != nil {
				return n, err
			}
			n++
		}
	}
	k, err = t.push(p)
	return n + k, err
}

// receive hands on the frame in receive buffer slot and posts it again.
func (t *Transport) receive(p *peer, slot, n int, h transport.Handler) error {
	size := t.cfg.SlotSize
	b := p.recvBuf[slot*size : slot*size+n]
	if n < slotHdrLen {
		return fmt.Errorf("%w: a message of %d bytes", transport.ErrProtocol, n)
	}
	p.credits += int(binary.LittleEndian.Uint32(b[0:]))
	if p.credits > t.cfg.Slots {
		return fmt.Errorf("%w: the peer returned more credits than it was given", transport.ErrProtocol)
	}
	if binary.LittleEndian.Uint32(b[4:])&flagFrame != 0 {
		hd := &t.hd
		if _, err := wire.ParseHeader(b[slotHdrLen:], hd); err != nil {
			return fmt.Errorf("%w: %v", transport.ErrProtocol, err)
		}
		payload := b[slotHdrLen+transport.HeaderLen:]
		if int(hd.Len) != len(payload) {
			return fmt.Errorf("%w: a frame header says %d bytes, the message holds %d", transport.ErrProtocol, hd.Len, len(payload))
		}
		if hd.Flags&transport.FlagDirect != 0 {
			dst := h.Destination(p.rank, hd)
			if dst != nil {
				copy(dst, payload)
			}
			h.Deliver(p.rank, hd, dst)
		} else {
			h.Deliver(p.rank, hd, payload)
		}
	}
	if err := t.postRecv(p, slot); err != nil {
		return err
	}
	p.owed++
	return nil
}

// failPeer ends the link to p: its queued frames fail, and so does every
// later Send to it. It returns the error as a *transport.PeerError.
func (t *Transport) failPeer(p *peer, err error) error {
	var pe *transport.PeerError
	if !errors.As(err, &pe) {
		pe = &transport.PeerError{Rank: p.rank, Op: "verbs link to", Err: err}
	}
	p.failed = pe
	p.ready.Store(false)
	if !p.queue.Empty() {
		t.nqueued--
	}
	for op := p.queue.Pop(); op != nil; op = p.queue.Pop() {
		op.Complete(pe)
	}
	if p.dialed && !p.up {
		t.dialing--
	}
	for i, q := range t.active {
		if q == p {
			t.active = append(t.active[:i], t.active[i+1:]...)
			break
		}
	}
	return pe
}

// Arm asks every link's completion queue to ring the bell at its next
// completion.
func (t *Transport) Arm() {
	for _, p := range t.active {
		p.cq.Arm()
	}
}

// Pending reports whether frames wait for credit or for their link.
func (t *Transport) Pending() bool { return t.nqueued > 0 || t.dialing > 0 }

// Expose registers buf for remote reading (through the registration
// cache) and appends its descriptor: address, length and remote key.
func (t *Transport) Expose(dst, buf []byte) ([]byte, error) {
	if len(buf) == 0 {
		return append(dst, make([]byte, descLen)...), nil
	}
	mr, err := t.cache.get(buf, RemoteRead)
	if err != nil {
		return dst, fmt.Errorf("verbs: register %d bytes for reading: %w", len(buf), err)
	}
	dst = binary.LittleEndian.AppendUint64(dst, mr.Addr)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(mr.Len))
	return binary.LittleEndian.AppendUint32(dst, mr.RKey), nil
}

// Unexpose ends the exposure; the registration stays cached.
func (t *Transport) Unexpose(desc []byte) {
	if len(desc) != descLen {
		return
	}
	addr, n, rkey := binary.LittleEndian.Uint64(desc), int(binary.LittleEndian.Uint64(desc[8:])), binary.LittleEndian.Uint32(desc[16:])
	if n > 0 {
		t.cache.releaseExposed(addr, n, rkey)
	}
}

// Read copies len(dst) bytes of peer's buffer that desc describes into
// dst by RDMA READ, straight into dst (registered through the cache). It
// polls the link's completion queue itself, keeping what is not its own
// for Poll.
func (t *Transport) Read(rank int, dst, desc []byte) error {
	if len(desc) != descLen {
		return fmt.Errorf("verbs read from rank %d: %w: descriptor of %d bytes", rank, transport.ErrProtocol, len(desc))
	}
	raddr, rlen, rkey := binary.LittleEndian.Uint64(desc), binary.LittleEndian.Uint64(desc[8:]), binary.LittleEndian.Uint32(desc[16:])
	if uint64(len(dst)) > rlen {
		return fmt.Errorf("verbs read from rank %d: %w: %d bytes from a buffer of %d", rank, transport.ErrProtocol, len(dst), rlen)
	}
	if len(dst) == 0 {
		return nil
	}
	t.mu.Lock()
	p := t.peers[rank]
	t.mu.Unlock()
	if p == nil || !p.ready.Load() {
		return fmt.Errorf("verbs read from rank %d: %w: no link to the rank", rank, transport.ErrProtocol)
	}
	mr, err := t.cache.get(dst, LocalWrite)
	if err != nil {
		return fmt.Errorf("verbs read from rank %d: register %d bytes: %w", rank, len(dst), err)
	}
	defer t.cache.release(mr)
	var mine []uint64
	for off := 0; off < len(dst); off += maxReadChunk {
		n := min(maxReadChunk, len(dst)-off)
		p.readSem <- struct{}{}
		p.cqMu.Lock()
		p.readSeq++
		seq := p.readSeq
		p.reads[seq] = &readWait{}
		p.cqMu.Unlock()
		mine = append(mine, seq)
		err := p.qp.PostSend(SendWR{ID: idRead | seq, Op: OpRead, Addr: mr.Addr + uint64(off), Len: n, LKey: mr.LKey,
			RemoteAddr: raddr + uint64(off), RKey: rkey})
		if err != nil {
			t.forgetReads(p, mine)
			return fmt.Errorf("verbs read from rank %d: post: %w", rank, err)
		}
	}
	defer t.forgetReads(p, mine)
	wcs := make([]WC, 16)
	for spins := 0; ; spins++ {
		p.cqMu.Lock()
		k, perr := p.cq.Poll(wcs)
		for _, wc := range wcs[:k] {
			if wc.ID&^idMask == idRead {
				if w := p.reads[wc.ID&idMask]; w != nil {
					w.done, w.st = true, wc.Status
				}
				continue
			}
			p.stash = append(p.stash, wc)
		}
		done, bad := true, Success
		for _, seq := range mine {
			w := p.reads[seq]
			done = done && w.done
			if w.done && w.st != Success && bad == Success {
				bad = w.st
			}
		}
		p.cqMu.Unlock()
		if k > 0 {
			t.cfg.Bell.Ring() // Poll has completions to handle
		}
		switch {
		case perr != nil:
			return fmt.Errorf("verbs read from rank %d: %w", rank, perr)
		case bad != Success:
			return &transport.PeerError{Rank: rank, Op: "verbs read from", Err: errors.New(bad.String())}
		case done:
			return nil
		case p.lost.Load() != nil:
			return &transport.PeerError{Rank: rank, Op: "verbs read from", Err: *p.lost.Load()}
		case t.closed.Load():
			return fmt.Errorf("verbs read from rank %d: %w", rank, transport.ErrClosed)
		}
		if spins > 100 {
			runtime.Gosched()
		}
	}
}

func (t *Transport) forgetReads(p *peer, seqs []uint64) {
	p.cqMu.Lock()
	for _, s := range seqs {
		delete(p.reads, s)
		<-p.readSem
	}
	p.cqMu.Unlock()
}

// Close destroys the queue pairs and the adapter's resources and closes
// the setup connections, which tells every peer this rank is gone.
// Queued frames fail with transport.ErrClosed. It is safe to call twice.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	close(t.closeCh)
	err := t.ln.Close()
	t.mu.Lock()
	for _, c := range t.conns {
		c.Close()
	}
	peers := t.peers
	t.mu.Unlock()
	for _, p := range peers {
		for op := p.queue.Pop(); op != nil; op = p.queue.Pop() {
			op.Complete(fmt.Errorf("verbs send to rank %d: %w", p.rank, transport.ErrClosed))
		}
		p.ready.Store(false)
		p.qp.Close()
		p.cq.Close()
	}
	t.active = nil
	t.wg.Wait()
	t.cache.close()
	return errors.Join(err, t.dev.Close())
}

// Connection setup. A rank that sends to a peer first dials the peer's
// setup listener, proves the job secret (internal/wire), and sends its
// rank and its queue pair's endpoint; the acceptor makes (or finds) its
// own queue pair for that rank, connects it, answers with its endpoint;
// the dialer connects and acknowledges, and only then does either side
// send. Two ranks dialing each other at once exchange the same two
// endpoints twice, since each has one queue pair per peer. The setup
// connections stay open: their end tells a rank that the peer is gone,
// which an RDMA queue pair that only receives would never notice.

func (t *Transport) arrive(a arrival) {
	t.mu.Lock()
	if a.conn != nil && !t.closed.Load() {
		t.conns = append(t.conns, a.conn)
	} else if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
	t.arrivals = append(t.arrivals, a)
	t.pending.Store(true)
	t.mu.Unlock()
	t.cfg.Bell.Ring()
}

func (t *Transport) hello(p *peer) []byte {
	b := wire.AppendVarint(nil, int64(t.cfg.Rank))
	b = wire.AppendString(b, t.cfg.JobID)
	return appendEndpoint(b, t.local(p))
}

func (t *Transport) local(p *peer) Endpoint {
	e := p.qp.Local()
	e.LID, e.GID = t.port.LID, t.port.GID
	return e
}

func appendEndpoint(b []byte, e Endpoint) []byte {
	b = binary.LittleEndian.AppendUint16(b, e.LID)
	b = append(b, e.GID[:]...)
	b = binary.LittleEndian.AppendUint32(b, e.QPN)
	return binary.LittleEndian.AppendUint32(b, e.PSN)
}

func parseEndpoint(b []byte) (Endpoint, error) {
	var e Endpoint
	if len(b) != endpointLen {
		return e, fmt.Errorf("%w: endpoint of %d bytes", transport.ErrProtocol, len(b))
	}
	e.LID = binary.LittleEndian.Uint16(b)
	copy(e.GID[:], b[2:18])
	e.QPN = binary.LittleEndian.Uint32(b[18:])
	e.PSN = binary.LittleEndian.Uint32(b[22:])
	return e, nil
}

func (t *Transport) connect(p *peer, remote Endpoint) error {
	p.connectMu.Lock()
	defer p.connectMu.Unlock()
	return p.qp.Connect(remote)
}

func (t *Transport) dial(p *peer, addr string) {
	defer t.wg.Done()
	fail := func(err error) {
		t.arrive(arrival{p: p, err: &transport.PeerError{Rank: p.rank, Addr: addr, Op: "verbs connect to", Err: err}})
	}
	if addr == "" {
		fail(errors.New("the rank published no verbs address"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-t.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	nc, err := wire.DialRetrying(ctx, t.cfg.DialTimeout, func() (net.Conn, error) { return t.handshake(ctx, p, addr) })
	if err != nil {
		fail(err)
		return
	}
	t.arrive(arrival{p: p, conn: nc})
}

// handshake dials addr once, proves the secret, and exchanges endpoints.
func (t *Transport) handshake(ctx context.Context, p *peer, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	if err := wire.Dial(nc, t.cfg.Secret, roleVerbs, t.hello(p)); err != nil {
		nc.Close()
		return nil, err
	}
	var reply [endpointLen]byte
	if _, err := io.ReadFull(nc, reply[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("read the peer's endpoint: %w", err)
	}
	remote, err := parseEndpoint(reply[:])
	if err == nil {
		err = t.connect(p, remote)
	}
	if err == nil {
		_, err = nc.Write([]byte{ackConnected})
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.closeCh:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !t.gate.Enter() {
			nc.Close()
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer t.gate.Leave()
			t.admit(nc)
		}()
	}
}

// admit authenticates a setup connection, answers with this rank's queue
// pair for the dialer, and connects it.
func (t *Transport) admit(nc net.Conn) {
	nc.SetDeadline(time.Now().Add(wire.HandshakeTimeout))
	hello, err := wire.Accept(nc, t.cfg.Secret, roleVerbs)
	if err != nil {
		t.log.Info("refused a verbs setup connection", zap.String("from", nc.RemoteAddr().String()), zap.Error(err))
		nc.Close()
		return
	}
	r := wire.NewReader(hello)
	rank, job := r.Int(), r.String()
	if r.Err() != nil || job != t.cfg.JobID || rank < 0 || rank == t.cfg.Rank || r.Len() != endpointLen {
		t.log.Info("refused a verbs setup connection with a bad greeting", zap.String("from", nc.RemoteAddr().String()), zap.Int("rank", rank))
		nc.Close()
		return
	}
	remote, _ := parseEndpoint(hello[len(hello)-endpointLen:])
	t.mu.Lock()
	var p *peer
	if !t.closed.Load() {
		p, err = t.peerLocked(rank)
	} else {
		err = transport.ErrClosed
	}
	t.mu.Unlock()
	// Ready to receive before the dialer learns the endpoint, and the
	// dialer's ready too before this side sends: a message reaching a
	// queue pair not yet connected is dropped (and, on an adapter, retried
	// until the retry counter runs out).
	if err == nil {
		err = t.connect(p, remote)
	}
	if err == nil {
		_, err = nc.Write(appendEndpoint(nil, t.local(p)))
	}
	if err == nil {
		var ack [1]byte
		if _, err = io.ReadFull(nc, ack[:]); err == nil && ack[0] != ackConnected {
			err = fmt.Errorf("%w: setup answer %d", transport.ErrProtocol, ack[0])
		}
	}
	if err != nil {
		nc.Close()
		if p != nil {
			t.arrive(arrival{p: p, err: &transport.PeerError{Rank: rank, Addr: nc.RemoteAddr().String(), Op: "verbs accept from", Err: err}})
		}
		return
	}
	nc.SetDeadline(time.Time{})
	t.arrive(arrival{p: p, conn: nc})
}

// watch reads p's setup connection until it ends: the peer closed its
// transport or died.
func (t *Transport) watch(p *peer, nc net.Conn) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		var b [1]byte
		_, err := nc.Read(b[:])
		if t.closed.Load() {
			return
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		err = fmt.Errorf("setup connection %s: %w", nc.RemoteAddr(), err)
		p.lost.CompareAndSwap(nil, &err)
		t.arrive(arrival{p: p, err: &transport.PeerError{Rank: p.rank, Op: "verbs link to", Err: err}})
	}()
}
