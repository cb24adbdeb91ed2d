package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/wire"
	"github.com/parley-hpc/parley/transport"
)

// Protocol limits.
const (
	// EagerLimit is the largest payload comm sends eagerly over TCP. Above
	// it, rendezvous lets the receiver read straight into the user's buffer,
	// and an unexpected message never holds a copy of a large payload.
	EagerLimit = 64 << 10
	// recvBufSize is the per-connection read buffer; it holds at least one
	// eager frame and lets one read system call bring many small frames.
	recvBufSize = 256 << 10
	// maxDirect is the largest payload of one FlagDirect frame.
	maxDirect = 1 << 30
	// maxDirectRead bounds one read of a direct payload. The kernel holds
	// the socket while a read copies, and opens the receive window again
	// only when the read returns: a read of megabytes at once left the
	// sender without window for a millisecond or more, and loopback TCP
	// then retransmitted and reordered (nstat TcpRetransSegs). 2 ranks,
	// bw 2-4 MiB, 5 alternating runs: 3.1-4.2 GB/s against 1.1-2.6 with
	// whole reads. Reads of 32 or 128 KiB measured alike (bw and bibw of
	// 256 KiB-4 MiB, 5 interleaved runs, within the runs' spread).
	maxDirectRead    = 64 << 10
	roleTCP          = 't'
	verdictOK        = 'O'
	verdictDuplicate = 'D'
)

// Config configures a rank's TCP transport.
type Config struct {
	Rank   int
	JobID  string
	Secret []byte
	// Listen is the host:port to listen on ("" means all interfaces, any port).
	Listen string
	// Advertise is the host put in Addr, the address peers dial; it must
	// be reachable from them.
	Advertise string
	// Bell is rung when a connection or a frame arrives while the rank sleeps.
	Bell transport.Bell
	// DialTimeout bounds connecting to a peer, retries included (default 30 s).
	DialTimeout time.Duration
	// Compress large payloads on connections whose other end agrees
	// (compress.go).
	Compress bool
	Logger   *zap.Logger
}

// Transport is one rank's TCP endpoint: a listener and one connection per
// peer it talks to.
//
// Concurrency: Send, Poll, Arm and Close are called by the owner's progress
// loop, one at a time (comm holds its engine lock). The accept and dial
// goroutines only touch the fields under mu.
type Transport struct {
	cfg  Config
	log  *zap.Logger
	ln   *net.TCPListener
	addr string

	// Owned by the progress loop.
	peers       map[int]*peer
	unconnected int     // peers with frames queued before their connection
	active      []*conn // connections to read
	writers     []*conn // connections with queued frames
	batching    bool    // between BeginBatch and EndBatch
	batched     []*conn // connections whose first queued frame the batch held back
	byFD        map[int]*conn
	readyFDs    []int   // toRead's scratch: the sockets epoll says are readable
	readList    []*conn // toRead's scratch: the connections to read

	mu       sync.Mutex    // guards state and arrivals
	state    map[int]uint8 // connection state per peer rank: stateDialing, stateConnected
	arrivals []arrival     // connections made or failed since the last Poll
	pending  atomic.Bool   // len(arrivals) > 0
	used     atomic.Bool   // a send was asked for or a connection came up (see InUse)

	watch   *watcher
	gate    *wire.Gate // bounds the handshakes in progress
	closeCh chan struct{}
	wg      sync.WaitGroup
	closed  bool
}

const (
	stateNone uint8 = iota
	stateDialing
	stateConnected
)

type peer struct {
	rank    int
	addr    string
	c       *conn
	queue   transport.OpQueue // frames waiting for the connection
	dialing bool
	err     error // sticky: the link to this peer failed
}

type arrival struct {
	rank     int
	nc       *net.TCPConn
	compress bool // both ends agreed to compress
	err      error
}

// Listen starts rank's TCP endpoint.
func Listen(cfg Config) (*Transport, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	// A plain listener, not go-reuseport's: each rank listens on a port of
	// its own that the kernel picks (advertised in its card), and accepts
	// at most one connection per peer, so SO_REUSEPORT's load spreading
	// over several listeners of one port has nothing to spread, and a
	// fixed shared port would let a stale listener of an earlier job take
	// this job's connections.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("tcp transport: listen on %q: %w", cfg.Listen, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	host := cfg.Advertise
	if host == "" {
		host = ln.Addr().(*net.TCPAddr).IP.String()
	}
	w, err := newWatcher(cfg.Bell)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("tcp transport: %w", err)
	}
	t := &Transport{
		cfg:     cfg,
		log:     log,
		ln:      ln.(*net.TCPListener),
		addr:    net.JoinHostPort(host, strconv.Itoa(port)),
		peers:   make(map[int]*peer),
		state:   make(map[int]uint8),
		watch:   w,
		gate:    wire.NewGate(),
		closeCh: make(chan struct{}),
	}
	t.wg.Add(2)
	go t.acceptLoop()
	go func() { defer t.wg.Done(); w.run() }()
	return t, nil
}

var _ interface {
	transport.Transport
	transport.Peeker
	transport.Armer
} = (*Transport)(nil)

// Caps reports what this transport does.
func (t *Transport) Caps() transport.Caps {
	return transport.Caps{Name: "tcp", EagerLimit: EagerLimit, MaxFrame: maxDirect}
}

// Addr is the address peers dial, host:port.
func (t *Transport) Addr() string { return t.addr }

func (t *Transport) peer(rank int, addr string) *peer {
	p := t.peers[rank]
	if p == nil {
		p = &peer{rank: rank, addr: addr}
		t.peers[rank] = p
	}
	if p.addr == "" {
		p.addr = addr
	}
	return p
}

// Reach records the address of peer rank's listener, which the first Send
// dials. pid is not needed over TCP.
func (t *Transport) Reach(rank int, addr string, pid int) error {
	if addr == "" {
		return fmt.Errorf("tcp: rank %d published no TCP address", rank)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("tcp: rank %d published a bad address %q: %w", rank, addr, err)
	}
	t.peer(rank, addr)
	return nil
}

// Send queues op for the peer rank, connecting first if needed. The op
// completes when all its bytes are written to the socket, or fails with an
// error that wraps transport.ErrPeerLost.
func (t *Transport) Send(rank int, op *transport.SendOp) {
	op.Reset()
	t.used.Store(true)
	if t.closed {
		op.Complete(fmt.Errorf("tcp send to rank %d: %w", rank, transport.ErrClosed))
		return
	}
	p := t.peer(rank, "")
	switch {
	case p.err != nil:
		op.Complete(p.err)
	case p.c != nil:
		t.enqueue(p.c, op)
	default:
		if p.queue.Empty() {
			t.unconnected++
		}
		p.queue.Push(op)
		if !p.dialing {
			p.dialing = true
			t.startDial(p)
		}
	}
}

func (t *Transport) enqueue(c *conn, op *transport.SendOp) {
	wasEmpty := c.sendq.Empty()
	c.sendq.Push(op)
	if wasEmpty {
		if t.batching {
			t.batched = append(t.batched, c)
			return
		}
		t.write(c)
	}
}

// write flushes c, whose queue was empty before, and lists it among the
// writers if the socket did not take everything.
func (t *Transport) write(c *conn) {
	if err := c.flush(); err != nil {
		t.fail(c, err)
		return
	}
	if !c.sendq.Empty() {
		t.writers = append(t.writers, c)
	}
}

// BeginBatch holds back the writes of frames queued on connections with
// nothing queued before, until EndBatch (transport.Batcher).
func (t *Transport) BeginBatch() { t.batching = true }

// EndBatch writes the connections the batch held back, each in as few
// writev calls as its queue needs (maxIov vectors each).
func (t *Transport) EndBatch() {
	t.batching = false
	for i, c := range t.batched {
		if !t.closed && c.dead == nil {
			t.write(c)
		}
		t.batched[i] = nil
	}
	t.batched = t.batched[:0]
}

// readyPollMin is the number of connections from which Poll asks epoll
// which sockets are readable before it reads, instead of trying a read on
// each: one system call against one per connection. Below it, trying the
// reads costs no more, and a ping-pong on one connection saves the call.
const readyPollMin = 3

// toRead lists the connections Poll reads: every one, or, from
// readyPollMin connections on, those epoll calls readable and any it does
// not watch. Every read drains its socket (up to EAGAIN), so a socket
// epoll does not report holds nothing a read would find. The list is
// scratch, valid until the next call.
func (t *Transport) toRead() []*conn {
	list := t.readList[:0]
	asked := false
	if len(t.active) >= readyPollMin {
		var fds []int
		fds, asked = t.watch.ready(t.readyFDs[:0], len(t.active))
		t.readyFDs = fds[:0]
		for _, fd := range fds {
			if c := t.byFD[fd]; c != nil {
				list = append(list, c)
			}
		}
	}
	for _, c := range t.active {
		if !asked || !c.watched {
			list = append(list, c)
		}
	}
	t.readList = list[:0]
	return list
}

// Poll installs new connections, reads every readable connection and
// delivers the frames found to h, and pushes queued writes. It returns the
// number of frames delivered and writes completed, and the first link
// failure seen (a *transport.PeerError); other links keep working.
func (t *Transport) Poll(h transport.Handler) (int, error) {
	var firstErr error
	if t.pending.Load() {
		firstErr = t.install()
	}
	n := 0
	for _, c := range t.toRead() {
		if c.dead != nil {
			continue
		}
		k, err := c.read(h)
		n += k
		if err != nil {
			t.fail(c, err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	for i := 0; i < len(t.writers); {
		c := t.writers[i]
		if c.dead != nil || c.sendq.Empty() {
			t.writers = append(t.writers[:i], t.writers[i+1:]...)
			continue
		}
		before := c.sendq.Len()
		moved, err := c.flushCount()
		if err != nil {
			t.fail(c, err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		n += before - c.sendq.Len()
		if moved && before == c.sendq.Len() {
			n++ // bytes went out, no frame completed yet: still progress
		}
		if c.sendq.Empty() && c.watchOut {
			c.watchOut = false
			t.watch.modify(c.fd, false)
		}
		i++
	}
	return n, firstErr
}

// Arm lets the watcher ring the Bell when any connection becomes readable,
// or writable for one with frames queued; comm calls it before it sleeps.
func (t *Transport) Arm() {
	for _, c := range t.writers {
		if !c.watchOut && c.dead == nil {
			c.watchOut = true
			t.watch.modify(c.fd, true)
		}
	}
	t.watch.arm()
}

// fail closes c after a read or write failure and fails its queued frames.
func (t *Transport) fail(c *conn, err error) {
	if c.dead == nil {
		c.dead = err
	}
	for i, a := range t.active {
		if a == c {
			t.active = append(t.active[:i], t.active[i+1:]...)
			break
		}
	}
	t.watch.remove(c.fd)
	delete(t.byFD, c.fd)
	c.close()
	for op := c.sendq.Pop(); op != nil; op = c.sendq.Pop() {
		op.Complete(c.dead)
	}
	if p := t.peers[c.peer]; p != nil && p.c == c {
		p.err = c.dead
	}
}

func (t *Transport) install() error {
	t.mu.Lock()
	as := t.arrivals
	t.arrivals = nil
	t.pending.Store(false)
	t.mu.Unlock()
	var firstErr error
	for _, a := range as {
		p := t.peer(a.rank, "")
		if !p.queue.Empty() {
			t.unconnected--
		}
		if a.err != nil {
			p.err = a.err
			for op := p.queue.Pop(); op != nil; op = p.queue.Pop() {
				op.Complete(a.err)
			}
			if firstErr == nil {
				firstErr = a.err
			}
			continue
		}
		if p.c != nil {
			// Cannot happen: the verdicts admit one connection per pair.
			a.nc.Close()
			continue
		}
		c, err := newConn(a.rank, a.nc)
		if c != nil {
			c.compress = a.compress
		}
		if err != nil {
			a.nc.Close()
			p.err = &transport.PeerError{Rank: a.rank, Addr: a.nc.RemoteAddr().String(), Op: "set up connection to", Err: err}
			continue
		}
		p.c = c
		t.active = append(t.active, c)
		t.used.Store(true)
		if err := t.watch.add(c.fd); err != nil {
			t.log.Warn("cannot watch connection; a sleeping rank may wake late", zap.Int("peer", a.rank), zap.Error(err))
		} else {
			c.watched = true
		}
		if t.byFD == nil {
			t.byFD = make(map[int]*conn)
		}
		t.byFD[c.fd] = c
		t.log.Debug("tcp connection up", zap.Int("rank", t.cfg.Rank), zap.Int("peer", a.rank),
			zap.String("local", a.nc.LocalAddr().String()), zap.String("remote", a.nc.RemoteAddr().String()))
		for op := p.queue.Pop(); op != nil; op = p.queue.Pop() {
			c.sendq.Push(op)
		}
		if !c.sendq.Empty() {
			t.writers = append(t.writers, c)
		}
	}
	return firstErr
}

// MayPoll reports, without the caller's lock, whether Poll could find
// work: true once this transport has carried anything or been asked to (a
// socket cannot be peeked at without a system call), or while connections
// wait to be installed. Waiting ranks use it to skip polling a transport
// that no peer uses.
func (t *Transport) MayPoll() bool { return t.used.Load() || t.pending.Load() }

func (t *Transport) arrive(a arrival) {
	t.mu.Lock()
	t.arrivals = append(t.arrivals, a)
	t.pending.Store(true)
	t.mu.Unlock()
	t.cfg.Bell.Ring()
}

// startDial connects to p in a goroutine, unless a connection from p has
// already been admitted.
func (t *Transport) startDial(p *peer) {
	t.mu.Lock()
	if t.state[p.rank] != stateNone {
		t.mu.Unlock()
		return
	}
	t.state[p.rank] = stateDialing
	t.mu.Unlock()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.dial(p.rank, p.addr)
	}()
}

func (t *Transport) dial(rank int, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-t.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	fail := func(err error) {
		t.arrive(arrival{rank: rank, err: &transport.PeerError{Rank: rank, Addr: addr, Op: "connect to", Err: err}})
	}
	if addr == "" {
		fail(errors.New("the rank published no TCP address"))
		return
	}
	// Connect and prove the secret, again after a short wait while the
	// peer is not listening yet, or closed the connection before answering
	// (its handshakes were all taken: see wire.Gate).
	var verdict [2]byte // verdict, the acceptor's capabilities
	nc, err := wire.DialRetrying(ctx, t.cfg.DialTimeout, func() (net.Conn, error) { return t.connect(ctx, addr, &verdict) })
	if err != nil {
		fail(err)
		return
	}
	nc.SetDeadline(time.Time{})
	if verdict[0] == verdictOK {
		t.mu.Lock()
		t.state[rank] = stateConnected
		t.mu.Unlock()
		t.arrive(arrival{rank: rank, nc: nc.(*net.TCPConn), compress: t.cfg.Compress && verdict[1]&capCompress != 0})
		return
	}
	// The peer's own connection to us wins; it is being admitted by our
	// accept side. Wait for that, so a failure there is not silent.
	nc.Close()
	for {
		t.mu.Lock()
		s := t.state[rank]
		t.mu.Unlock()
		if s == stateConnected {
			return
		}
		select {
		case <-ctx.Done():
			fail(errors.New("the peer's own connection to this rank never came"))
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// connect dials addr once, proves the job secret and reads the acceptor's
// verdict.
func (t *Transport) connect(ctx context.Context, addr string, verdict *[2]byte) (net.Conn, error) {
	d := net.Dialer{KeepAliveConfig: keepAlive}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	hello := wire.AppendVarint(nil, int64(t.cfg.Rank))
	hello = wire.AppendString(hello, t.cfg.JobID)
	hello = wire.AppendUvarint(hello, t.caps())
	if err := wire.Dial(nc, t.cfg.Secret, roleTCP, hello); err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := io.ReadFull(nc, verdict[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("read connection verdict: %w", err)
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		nc, err := t.ln.AcceptTCP()
		if err != nil {
			select {
			case <-t.closeCh:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("tcp accept", zap.Error(err))
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !t.gate.Enter() {
			nc.Close() // too many handshakes in progress (see wire.Gate)
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

// admit authenticates an incoming connection and decides whether it is
// the pair's connection (see the package comment).
func (t *Transport) admit(nc *net.TCPConn) {
	nc.SetDeadline(time.Now().Add(wire.HandshakeTimeout))
	hello, err := wire.Accept(nc, t.cfg.Secret, roleTCP)
	if err != nil {
		t.log.Info("refused a TCP connection", zap.String("from", nc.RemoteAddr().String()), zap.Error(err))
		nc.Close()
		return
	}
	r := wire.NewReader(hello)
	rank, job, theirs := r.Int(), r.String(), r.Uvarint()
	if err := r.Done(); err != nil || job != t.cfg.JobID || rank < 0 || rank == t.cfg.Rank {
		t.log.Info("refused a TCP connection with a bad greeting", zap.String("from", nc.RemoteAddr().String()),
			zap.Int("rank", rank), zap.String("job", job))
		nc.Close()
		return
	}
	t.mu.Lock()
	s := t.state[rank]
	ok := s == stateNone || (s == stateDialing && rank < t.cfg.Rank)
	if ok {
		t.state[rank] = stateConnected
	}
	t.mu.Unlock()
	v := byte(verdictDuplicate)
	if ok {
		v = verdictOK
	}
	if _, err := nc.Write([]byte{v, byte(t.caps())}); err != nil || !ok {
		nc.Close()
		if ok {
			t.arrive(arrival{rank: rank, err: &transport.PeerError{Rank: rank, Addr: nc.RemoteAddr().String(), Op: "accept from", Err: err}})
		}
		return
	}
	nc.SetDeadline(time.Time{})
	nc.SetKeepAliveConfig(keepAlive)
	t.arrive(arrival{rank: rank, nc: nc, compress: t.cfg.Compress && theirs&capCompress != 0})
}

// Capabilities exchanged in the handshake.
const capCompress = 1 << 0

func (t *Transport) caps() uint64 {
	if t.cfg.Compress {
		return capCompress
	}
	return 0
}

// Close closes the listener and every connection, fails queued frames with
// transport.ErrClosed, and waits for the transport's goroutines. It is safe
// to call twice.
func (t *Transport) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	close(t.closeCh)
	err := t.ln.Close()
	t.watch.close()
	t.wg.Wait()
	t.mu.Lock()
	as := t.arrivals
	t.arrivals = nil
	t.mu.Unlock()
	for _, a := range as {
		if a.nc != nil {
			a.nc.Close()
		}
	}
	closedErr := fmt.Errorf("tcp transport of rank %d: %w", t.cfg.Rank, transport.ErrClosed)
	for _, p := range t.peers {
		if p.c != nil && p.c.dead == nil {
			p.c.dead = closedErr
			p.c.close()
			for op := p.c.sendq.Pop(); op != nil; op = p.c.sendq.Pop() {
				op.Complete(closedErr)
			}
		}
		for op := p.queue.Pop(); op != nil; op = p.queue.Pop() {
			op.Complete(closedErr)
		}
	}
	t.active, t.writers, t.unconnected, t.byFD = nil, nil, 0, nil
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Pending reports whether frames wait to be written or for a connection.
func (t *Transport) Pending() bool { return len(t.writers) > 0 || t.unconnected > 0 }

// WriteCalls counts the writev system calls made on the connections up
// to now, for tests (what a batch saves).
func (t *Transport) WriteCalls() int {
	n := 0
	for _, p := range t.peers {
		if p.c != nil {
			n += p.c.writes
		}
	}
	return n
}

// DebugState describes the connections, for tests.
func (t *Transport) DebugState() string {
	s := fmt.Sprintf("writers=%d unconnected=%d", len(t.writers), t.unconnected)
	for r, p := range t.peers {
		s += fmt.Sprintf(" [peer %d conn=%v dialing=%v queued=%v err=%v", r, p.c != nil, p.dialing, !p.queue.Empty(), p.err)
		if p.c != nil {
			s += fmt.Sprintf(" sendq=%d watchOut=%v", p.c.sendq.Len(), p.c.watchOut)
		}
		s += "]"
	}
	t.mu.Lock()
	s += fmt.Sprintf(" state=%v arrivals=%d", t.state, len(t.arrivals))
	t.mu.Unlock()
	return s
}
