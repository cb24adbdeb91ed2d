package main

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

func init() {
	register(&benchmark{name: "latency", kind: "latency", minRank: 2, run: runLatency})
	register(&benchmark{name: "bw", kind: "bandwidth", minRank: 2, run: runBW, defMin: 1})
	register(&benchmark{name: "bibw", kind: "bandwidth", minRank: 2, run: runBiBW, defMin: 1})
	register(&benchmark{name: "mbw_mr", kind: "rate", minRank: 2, even: true, run: runMBWMR, defMin: 1})
	register(&benchmark{name: "multi_lat", kind: "latency", minRank: 2, even: true, run: runMultiLat})
}

const (
	tagData = 1
	tagAck  = 2
)

// randomData (--random) makes the payload incompressible: bytes of a
// hash of their index instead of a short repeating pattern, for measuring
// mpirun --compress on data it cannot shrink. Set once, before any rank
// starts its benchmark.
var randomData bool

// patternByte is byte i of the payload for seed.
func patternByte(i, seed int) byte {
	if !randomData {
		return byte(i*7 + seed)
	}
	// splitmix64's finalizer: every bit of i and seed reaches every bit.
	x := uint64(i)*0x9e3779b97f4a7c15 + uint64(seed)
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return byte(x ^ x>>31)
}

// fill writes the validation pattern of (size, seed) into b.
func fill(b []byte, seed int) {
	for i := range b {
		b[i] = patternByte(i, seed)
	}
}

// check verifies the pattern.
func check(b []byte, seed int) error {
	for i := range b {
		if want := patternByte(i, seed); b[i] != want {
			return fmt.Errorf("validation failed: byte %d of %d is %d, want %d", i, len(b), b[i], want)
		}
	}
	return nil
}

// pingPong runs iters+warmup round trips between me and peer (me leads
// when lead) and returns the time of the timed ones in microseconds.
func pingPong(be *bencher, peer int, lead bool, size, iters, warmup int) (float64, error) {
	w := be.world
	sbuf, rbuf := make([]byte, size), make([]byte, size)
	fill(sbuf, size)
	var t0 float64
	for i := 0; i < iters+warmup; i++ {
		if i == warmup {
			t0 = now()
		}
		if lead {
			if err := w.Send(sbuf, peer, tagData); err != nil {
				return 0, err
			}
			if _, err := w.Recv(rbuf, peer, tagData); err != nil {
				return 0, err
			}
		} else {
			if _, err := w.Recv(rbuf, peer, tagData); err != nil {
				return 0, err
			}
			if err := w.Send(sbuf, peer, tagData); err != nil {
				return 0, err
			}
		}
		if be.o.validate {
			if err := check(rbuf, size); err != nil {
				return 0, err
			}
		}
	}
	return now() - t0, nil
}

// runLatency is osu_latency: ranks 0 and 1 ping-pong; latency = RTT/2.
func runLatency(be *bencher) error {
	w := be.world
	if be.o.busy {
		stop := busyGoroutines(runtime.GOMAXPROCS(0) - 1)
		defer stop()
	}
	for _, size := range be.sizes() {
		iters, warmup := be.counts(size)
		if err := collectives.Barrier(w); err != nil {
			return err
		}
		var t float64
		if w.Rank() < 2 {
			var err error
			t, err = pingPong(be, 1-w.Rank(), w.Rank() == 0, size, iters, warmup)
			if err != nil {
				return err
			}
		}
		be.add(point{Size: size, Value: t / float64(2*iters), Iterations: iters})
	}
	return collectives.Barrier(w)
}

// windowOf makes the persistent requests of a window of n sends (or
// receives) of buf with peer. The OSU benchmarks post a window with
// MPI_Isend or MPI_Irecv and MPI_Waitall, which frees each request for
// the library to reuse; a parley request is the program's as long as it
// holds it, so the way to repeat operations without allocating is a
// persistent request, started once per window.
func windowOf(w *comm.Comm, buf []byte, peer int, send bool, n int) ([]*comm.Request, error) {
	reqs := make([]*comm.Request, n)
	for k := range reqs {
		var err error
		if send {
			reqs[k], err = w.SendInit(buf, peer, tagData)
		} else {
			reqs[k], err = w.RecvInit(buf, peer, tagData)
		}
		if err != nil {
			return nil, err
		}
	}
	return reqs, nil
}

// window starts a window of persistent requests and waits for them.
func window(reqs []*comm.Request) error {
	if err := comm.Startall(reqs...); err != nil {
		return err
	}
	return comm.WaitallNoStatus(reqs...)
}

// streamTime times iters windows from sender to peer with an ack after
// each window (osu_bw); it returns microseconds for the timed windows.
func streamTime(be *bencher, peer int, sender bool, size, iters, warmup int) (float64, error) {
	w := be.world
	buf := make([]byte, size)
	ack := make([]byte, 4)
	fill(buf, size)
	reqs, err := windowOf(w, buf, peer, sender, be.o.window)
	if err != nil {
		return 0, err
	}
	var t0 float64
	for i := 0; i < iters+warmup; i++ {
		if i == warmup {
			t0 = now()
		}
		if sender {
			if err := window(reqs); err != nil {
				return 0, err
			}
			if _, err := w.Recv(ack, peer, tagAck); err != nil {
				return 0, err
			}
		} else {
			if err := window(reqs); err != nil {
				return 0, err
			}
			if be.o.validate {
				if err := check(buf, size); err != nil {
					return 0, err
				}
			}
			if err := w.Send(ack, peer, tagAck); err != nil {
				return 0, err
			}
		}
	}
	return now() - t0, nil
}

// runBW is osu_bw: rank 0 streams windows of messages to rank 1.
func runBW(be *bencher) error {
	w := be.world
	for _, size := range be.sizes() {
		iters, warmup := be.counts(size)
		if err := collectives.Barrier(w); err != nil {
			return err
		}
		var t float64
		if w.Rank() < 2 {
			var err error
			if t, err = streamTime(be, 1-w.Rank(), w.Rank() == 0, size, iters, warmup); err != nil {
				return err
			}
		}
		be.add(point{Size: size, Value: float64(size) * float64(be.o.window*iters) / t, Iterations: iters})
	}
	return collectives.Barrier(w)
}

// runBiBW is osu_bibw: ranks 0 and 1 stream windows to each other at once.
func runBiBW(be *bencher) error {
	w := be.world
	for _, size := range be.sizes() {
		iters, warmup := be.counts(size)
		if err := collectives.Barrier(w); err != nil {
			return err
		}
		var t float64
		if w.Rank() < 2 {
			peer := 1 - w.Rank()
			sbuf, rbuf := make([]byte, size), make([]byte, size)
			fill(sbuf, size)
			recvs, err := windowOf(w, rbuf, peer, false, be.o.window)
			if err != nil {
				return err
			}
			sends, err := windowOf(w, sbuf, peer, true, be.o.window)
			if err != nil {
				return err
			}
			reqs := append(recvs, sends...)
			var t0 float64
			for i := 0; i < iters+warmup; i++ {
				if i == warmup {
					t0 = now()
				}
				if err := window(reqs); err != nil {
					return err
				}
				if be.o.validate {
					if err := check(rbuf, size); err != nil {
						return err
					}
				}
			}
			t = now() - t0
		}
		be.add(point{Size: size, Value: 2 * float64(size) * float64(be.o.window*iters) / t, Iterations: iters})
	}
	return collectives.Barrier(w)
}

// pairOf pairs rank i < n/2 with rank i+n/2, as the OSU multi-pair
// benchmarks do; first reports whether this rank is the lower of its pair.
func pairOf(w *comm.Comm) (peer int, first bool) {
	pairs := w.Size() / 2
	if w.Rank() < pairs {
		return w.Rank() + pairs, true
	}
	return w.Rank() - pairs, false
}

// runMBWMR is osu_mbw_mr: rank i < n/2 streams to rank i+n/2, all pairs at
// once; reports aggregate bandwidth and message rate.
func runMBWMR(be *bencher) error {
	w := be.world
	pairs := w.Size() / 2
	peer, sender := pairOf(w)
	for _, size := range be.sizes() {
		iters, warmup := be.counts(size)
		if err := collectives.Barrier(w); err != nil {
			return err
		}
		t, err := streamTime(be, peer, sender, size, iters, warmup)
		if err != nil {
			return err
		}
		// The slowest pair sets the aggregate rate.
		tmax, err := maxOver(w, t)
		if err != nil {
			return err
		}
		rate := float64(pairs*be.o.window*iters) / tmax * 1e6
		be.add(point{Size: size, Value: rate * float64(size) / 1e6, Rate: rate, Iterations: iters})
	}
	return collectives.Barrier(w)
}

// runMultiLat is osu_multi_lat: every pair ping-pongs at once; the
// latency is the mean over pairs.
func runMultiLat(be *bencher) error {
	w := be.world
	peer, lead := pairOf(w)
	for _, size := range be.sizes() {
		iters, warmup := be.counts(size)
		if err := collectives.Barrier(w); err != nil {
			return err
		}
		t, err := pingPong(be, peer, lead, size, iters, warmup)
		if err != nil {
			return err
		}
		avg, _, _, err := statsOver(w, t/float64(2*iters))
		if err != nil {
			return err
		}
		be.add(point{Size: size, Value: avg, Iterations: iters})
	}
	return collectives.Barrier(w)
}

// maxOver returns the largest v of all ranks at every rank.
func maxOver(w *comm.Comm, v float64) (float64, error) {
	in, out := []float64{v}, make([]float64, 1)
	err := collectives.Allreduce(w, in, out, collectives.Max)
	return out[0], err
}

// statsOver returns the mean, min and max of v over the ranks, at rank 0.
func statsOver(w *comm.Comm, v float64) (avg, lo, hi float64, err error) {
	out := make([]float64, 3)
	if err = collectives.Reduce(w, []float64{v}, out[0:1], collectives.Sum, 0); err != nil {
		return
	}
	if err = collectives.Reduce(w, []float64{v}, out[1:2], collectives.Min, 0); err != nil {
		return
	}
	if err = collectives.Reduce(w, []float64{v}, out[2:3], collectives.Max, 0); err != nil {
		return
	}
	return out[0] / float64(w.Size()), out[1], out[2], nil
}

// busyGoroutines starts n goroutines that compute without calling the
// runtime (latency -busy: every P but the communicating goroutine's is
// busy, as in a hybrid program), and returns the function that stops them.
func busyGoroutines(n int) func() {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 1.0
			for !stop.Load() {
				for i := 0; i < 1000; i++ {
					x = x*1.0000001 + 1e-9
				}
			}
			sink = x
		}()
	}
	return func() {
		stop.Store(true)
		wg.Wait()
	}
}
