package comm

import (
	"errors"
	"fmt"
	"net"
	"os"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/transport"
	"github.com/parley-hpc/parley/transport/shm"
	"github.com/parley-hpc/parley/transport/tcp"
	"github.com/parley-hpc/parley/transport/verbs"
)

// This file is where the engine meets concrete transports: it starts
// them and says which peers each reaches. Everything else in comm knows
// transports only through transport.Transport and its optional
// interfaces.

// A link is a transport routes can use, and which peers it reaches.
type link struct {
	t    transport.Transport
	name string
	// onNode: it reaches only ranks of this node; offNode: only ranks
	// of other nodes.
	onNode, offNode bool
	// addr is the peer's address for this transport, from its card.
	addr func(*bootstrap.Card) string
}

// Transport modes (Options.Transport, PARLEY_TRANSPORT, mpirun --transport).
const (
	modeAuto  = "auto"
	modeShm   = "shm"
	modeTCP   = "tcp"
	modeVerbs = "verbs"
)

// chooseLocked picks dest's transport: the first link, in order of
// preference, that reaches a rank where dest is and that dest published
// an address for.
func (e *engine) chooseLocked(rt *route, dest int, card *bootstrap.Card) {
	sameNode := card.Node == e.node
	var tried []error
	for _, l := range e.links {
		if l.onNode && !sameNode || l.offNode && sameNode {
			continue
		}
		addr := l.addr(card)
		if addr == "" {
			tried = append(tried, fmt.Errorf("%s: the rank published no address", l.name))
			continue
		}
		if err := l.t.Reach(dest, addr, card.Pid); err != nil {
			e.log.Warn("a transport could not reach a rank; trying the next", zap.Int("peer", dest), zap.String("via", l.name), zap.Error(err))
			tried = append(tried, err)
			continue
		}
		e.useLocked(rt, l.t)
		e.log.Info("transport chosen", zap.Int("peer", dest), zap.String("via", l.name), zap.String("addr", addr))
		return
	}
	rt.err = fmt.Errorf("rank %d on host %s: %w", dest, card.Hostname, transport.ErrNoRoute)
	if len(tried) > 0 {
		rt.err = fmt.Errorf("%w (%w)", rt.err, errors.Join(tried...))
	}
}

// addLink makes t one of the engine's transports, for the peers l says.
func (e *engine) addLink(l link) {
	e.links = append(e.links, l)
	e.addTransport(l.t)
}

func (e *engine) startTransports(opts *Options, card *bootstrap.Card) error {
	mode := opts.Transport
	switch {
	case opts.ForceTCP:
		mode = modeTCP
	case mode == "":
		mode = modeAuto
	}
	switch mode {
	case modeAuto, modeShm, modeTCP, modeVerbs:
	default:
		return fmt.Errorf("transport %q: want auto, shm, tcp or verbs", mode)
	}
	if mode != modeTCP && !opts.NoShm && opts.LocalSize > 1 {
		if err := e.startShm(opts, card); err != nil {
			return err
		}
	}
	allLocal := opts.LocalSize == opts.Size
	if mode == modeVerbs || mode == modeAuto && !allLocal {
		if err := e.startVerbs(opts, card); err != nil {
			if mode == modeVerbs {
				return fmt.Errorf("--transport verbs: %w", err)
			}
			e.log.Info("verbs not used between hosts; TCP is", zap.Error(err))
		}
	}
	if e.bellInSegment && allLocal && opts.ShmSegment != "" {
		return nil // every rank is on this host, all with shared memory: no TCP needed
	}
	return e.startTCP(opts, card, mode == modeVerbs)
}

func (e *engine) startShm(opts *Options, card *bootstrap.Card) error {
	t, err := shm.Open(shm.Config{JobID: opts.JobID, Rank: opts.Rank, Size: opts.Size, LocalRank: opts.LocalRank,
		LocalSize: opts.LocalSize, EagerLimit: debugInt("shm_eager"), ChainLimit: debugInt("shm_chain"), Segment: opts.ShmSegment,
		ReadFirst: opts.ShmReadFirst && debugInt("shm_chain") == 0})
	if err != nil && opts.ShmSegment != "" {
		// The agent reserved it: the host's other ranks count on this
		// rank's shared memory, and would find no TCP listener here.
		return fmt.Errorf("the segment the node agent reserved for this rank: %w", err)
	}
	if err != nil {
		e.log.Warn("no shared memory for this rank; its local peers reach it over TCP", zap.Error(err))
		return nil
	}
	e.bell = t.Bell()
	e.bellInSegment = true
	e.shm = t
	card.Shm = t.Addr()
	e.addLink(link{t: t, name: "shm", onNode: true, addr: func(c *bootstrap.Card) string { return c.Shm }})
	if debugInt("nondumpable") == 1 {
		linux.ForbidReads() // tests: the kernel refuses peers' reads of this rank
	}
	if what, err := linux.AllowPeersToRead(); err != nil {
		e.noRemoteRead = true
		host, _ := os.Hostname()
		e.mu.Lock()
		e.noticeLocked(fmt.Sprintf("%s: single-copy transfers between ranks are off (%v); large messages are copied through shared memory instead, at lower bandwidth", host, err))
		e.unlock()
	} else {
		e.log.Debug("single copy", zap.String("ptrace policy", what))
	}
	return nil
}

// advertise is the host peers dial for TCP and for verbs connection
// setup.
func advertise(opts *Options) (string, error) {
	if opts.Iface != "" {
		return bootstrap.IfaceAddr(opts.Iface)
	}
	if opts.TCPAdvertise != "" {
		return opts.TCPAdvertise, nil
	}
	return defaultAdvertise(), nil
}

// startVerbs opens the adapter (the options' or libibverbs') and the
// verbs transport, which then carries every pair on different nodes.
func (e *engine) startVerbs(opts *Options, card *bootstrap.Card) error {
	dev := opts.VerbsDevice
	if dev == nil {
		var err error
		if dev, err = verbs.Open(os.Getenv(bootstrap.EnvVerbsDevice)); err != nil {
			return err
		}
	}
	host, err := advertise(opts)
	if err != nil {
		dev.Close()
		return err
	}
	t, err := verbs.New(verbs.Config{Rank: opts.Rank, JobID: opts.JobID, Secret: opts.Secret, Device: dev,
		Listen: net.JoinHostPort(listenHost(host), "0"), Advertise: host, Bell: e.bell, Logger: e.log})
	if err != nil {
		return err
	}
	card.Verbs = []byte(t.Addr())
	e.addLink(link{t: t, name: "verbs", offNode: true, addr: func(c *bootstrap.Card) string { return string(c.Verbs) }})
	e.log.Info("verbs between hosts", zap.String("device", dev.Name()))
	return nil
}

// startTCP starts the TCP transport; with onNodeOnly (verbs required
// between hosts) it carries only pairs on one node without shared memory.
func (e *engine) startTCP(opts *Options, card *bootstrap.Card, onNodeOnly bool) error {
	host, err := advertise(opts)
	if err != nil {
		return err
	}
	listen := opts.TCPListen
	if listen == "" {
		listen = net.JoinHostPort(listenHost(host), "0")
	}
	t, err := tcp.Listen(tcp.Config{Rank: opts.Rank, JobID: opts.JobID, Secret: opts.Secret,
		Listen: listen, Advertise: host, Bell: e.bell, Logger: e.log, Compress: opts.Compress})
	if err != nil {
		return err
	}
	card.TCP = t.Addr()
	e.addLink(link{t: t, name: "tcp", onNode: onNodeOnly, addr: func(c *bootstrap.Card) string { return c.TCP }})
	return nil
}
