package shm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/transport"
)

// Medium messages, between EagerLimit and ChainLimit, can travel two ways
// between the ranks of a host: as a chain of frames through the ring (two
// copies, the sender's into the ring while the receiver copies out the
// frame before) or by one process_vm_readv of the sender's buffer after a
// small frame that announces it. Which is faster depends on the machine
// more than on the message: a chain moves every byte as lines that one
// core writes and the other reads, which costs little between cores that
// share a cache and much between cores that do not. Measured with bench,
// 2 ranks, 64 KiB: one 2-vCPU machine ran chains at 23.7 GB/s against
// 10.7 for Open MPI's single copy; another (2 vCPU, Intel Xeon) at 6.0
// against 14.9 for parley's own single copy and 12.6 for Open MPI's. So the
// node agent measures both on the cores its ranks will run on, before it
// starts them (MeasureMedium), and tells them which to use.

// Medium is what MeasureMedium found: the time to move a stream of
// medium messages (probeMessages of probeMessageSize bytes) from one core
// to another by each of the two ways, the best of probeRounds interleaved
// rounds of each.
type Medium struct {
	Chain time.Duration // as chains of 8 KiB frames through a ring
	Read  time.Duration // by an announcing frame and one process_vm_readv each
}

// ReadWins reports whether the single copy moved the stream faster.
func (m Medium) ReadWins() bool { return m.Read < m.Chain }

func (m Medium) String() string {
	mb := float64(probeMessages*probeMessageSize) / 1e6
	return fmt.Sprintf("chains %.1f GB/s, single copy %.1f GB/s",
		mb/m.Chain.Seconds()/1e3, mb/m.Read.Seconds()/1e3)
}

const (
	probeMessageSize = 64 << 10
	probeMessages    = 16 // 1 MiB a round: 0.1-0.2 ms at 5-15 GB/s
	probeRounds      = 3
	// probeRoundLimit ends a measure whose round takes 50-100 times what
	// it does on an idle machine.
	probeRoundLimit = 20 * time.Millisecond
)

// ErrBusyCPU is MeasureMedium's error when a round takes too long, most
// likely because another thread holds one of the two cpus: the measure
// says nothing then, and the caller keeps its default.
var ErrBusyCPU = errors.New("a cpu of the measure is busy")

// MeasureMedium streams medium messages through a real ring (this
// package's Transport over heap memory) from a thread bound to cpu from
// to one bound to cpu to, as chains and as single copies, and reports how
// long each took. It fails where process_vm_readv is refused (then chains
// are the only way) or a thread cannot be bound. It takes about a
// millisecond.
func MeasureMedium(from, to int) (Medium, error) {
	if from == to {
		return Medium{}, fmt.Errorf("measure medium messages: both ends on cpu %d", from)
	}
	if err := linux.ProbeReadRemote(); err != nil {
		return Medium{}, err
	}
	cons, prod, err := heapPair(1, MaxSlots, 0)
	if err != nil {
		return Medium{}, err
	}
	src := make([]byte, probeMessageSize)
	for i := range src {
		src[i] = byte(i)
	}
	desc, err := prod.Expose(nil, src)
	if err != nil {
		return Medium{}, err
	}
	cons.pids = map[int]int{0: os.Getpid()} // the producer is rank 0, in this process
	p := &probe{cons: cons, prod: prod, src: src, desc: desc, dst: make([]byte, probeMessageSize)}
	best := Medium{Chain: time.Hour, Read: time.Hour}
	var wg sync.WaitGroup
	var errs [2]error
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = p.run(from, p.produce) }()
	go func() {
		defer wg.Done()
		errs[1] = p.run(to, func() error {
			for round := range probeRounds {
				for _, chain := range []bool{round%2 == 0, round%2 != 0} {
					d, err := p.consume(chain)
					if err != nil {
						return err
					}
					if chain {
						best.Chain = min(best.Chain, d)
					} else {
						best.Read = min(best.Read, d)
					}
				}
			}
			p.stop.Store(true)
			return nil
		})
	}()
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return Medium{}, fmt.Errorf("measure medium messages from cpu %d to %d: %w", from, to, err)
	}
	return best, nil
}

// probe is the state the two threads of MeasureMedium share.
type probe struct {
	cons, prod *Transport
	src, dst   []byte
	desc       []byte // src's descriptor (Expose)
	// A round starts when the consumer stores its number (1-based; odd
	// rounds chains, even single copies) in start; stop ends the producer.
	start atomic.Int64
	stop  atomic.Bool
	fail  atomic.Bool
	got   int // bytes the consumer's handler placed this round
	reads int // announcements it handled this round
	err   error
}

// run binds the calling goroutine's thread to cpu and runs f on it. The
// thread is not unlocked: it ends with the goroutine, binding and all.
func (p *probe) run(cpu int, f func() error) error {
	runtime.LockOSThread()
	if err := linux.SetThreadAffinity([]int{cpu}); err != nil {
		p.fail.Store(true)
		return err
	}
	err := f()
	if err != nil {
		p.fail.Store(true)
	}
	return err
}

// produce sends each round's messages as the consumer asks for them.
func (p *probe) produce() error {
	done := int64(0)
	for !p.stop.Load() && !p.fail.Load() {
		round := p.start.Load()
		if round == done {
			continue
		}
		done = round
		chain := round%2 == 1
		for range probeMessages {
			if chain {
				for off := 0; off < len(p.src); off += maxDataFrame {
					h := transport.Header{Flags: transport.FlagDirect, Cookie: 1, Aux: uint64(off), Len: maxDataFrame}
					for !p.prod.TrySend(0, &h, p.src[off:off+maxDataFrame]) {
						if p.fail.Load() {
							return nil
						}
					}
				}
				continue
			}
			// The announcement carries the buffer's descriptor, as a
			// rendezvous's does.
			h := transport.Header{Cookie: 1, Len: uint32(len(p.desc))}
			for !p.prod.TrySend(0, &h, p.desc) {
				if p.fail.Load() {
					return nil
				}
			}
		}
	}
	return nil
}

// consume starts a round and times it until every message is in dst.
func (p *probe) consume(chain bool) (time.Duration, error) {
	p.got, p.reads = 0, 0
	clear(p.dst)
	round := p.start.Load() + 1
	if chain != (round%2 == 1) {
		round++
	}
	t0 := time.Now()
	p.start.Store(round)
	want := probeMessages * probeMessageSize
	for i := 0; p.got < want && p.reads < probeMessages; i++ {
		if _, err := p.cons.Poll(p); err != nil {
			return 0, err
		}
		if p.err != nil {
			return 0, p.err
		}
		if i%1024 == 1023 {
			// The producer failed, or cannot run: the ranks must not wait
			// for the measure.
			if p.fail.Load() {
				return 0, errors.New("the sending thread failed")
			}
			if time.Since(t0) > probeRoundLimit {
				return 0, fmt.Errorf("%w: a round took longer than %v", ErrBusyCPU, probeRoundLimit)
			}
		}
	}
	d := time.Since(t0)
	if !bytes.Equal(p.dst, p.src) {
		return 0, fmt.Errorf("a message arrived with other contents (chains: %v)", chain)
	}
	return d, nil
}

// Destination places a chain's frame in dst.
func (p *probe) Destination(from int, h *transport.Header) []byte {
	off := int(h.Aux)
	if off < 0 || off+int(h.Len) > len(p.dst) {
		return nil
	}
	return p.dst[off : off+int(h.Len)]
}

// Deliver counts a chain's frame, or reads the message an announcement
// names.
func (p *probe) Deliver(from int, h *transport.Header, payload []byte) {
	if h.Flags&transport.FlagDirect != 0 {
		p.got += len(payload)
		return
	}
	p.reads++
	if err := p.cons.Read(from, p.dst, payload); err != nil {
		p.err = err
	}
}

// heapPair makes a consumer transport over a segment in heap memory with
// nrings rings of nslots slots, and a producer transport that sends into
// its ring lr, for use within one process.
func heapPair(nrings, nslots, lr int) (cons, prod *Transport, err error) {
	mem := heapMem(regionSize(nrings, nslots))
	g, err := newRegion(mem, nrings, nslots, 1, 0, true)
	if err != nil {
		return nil, nil, err
	}
	seg := &segment{name: "heap", mem: mem, g: g}
	cons = &Transport{cfg: Config{Slots: nslots, EagerLimit: EagerLimit, Size: nrings}, own: seg, g: g, rx: make([]rxRing, nrings),
		seen: make([]uint64, g.bitmapWords()), from: make([]int, nrings), peers: map[int]*peer{}, maxLen: nslots*slotSize/4 - frameDataOff}
	for i := range cons.rx {
		cons.rx[i].r = g.ring(i)
		cons.from[i] = -1
	}
	prod = &Transport{cfg: Config{Slots: nslots, LocalRank: lr, Rank: lr}, peers: map[int]*peer{}, maxLen: cons.maxLen}
	prod.peers[0] = newPeer(0, 0, seg, g.ring(lr))
	g.ring(lr).sender.Store(uint64(lr) + 1)
	g.activeWord(lr / 64).Or(1 << (lr % 64))
	return cons, prod, nil
}
