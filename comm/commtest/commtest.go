// Package commtest runs several ranks of a world inside one test process,
// each a goroutine with its own runtime, connected over the real
// transports (loopback TCP, shared memory in this process's own
// segments, or RDMA verbs over the fake adapter of verbs.NewFabric), so
// that tests of comm and of collectives exercise real progress and
// matching without starting processes.
package commtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/transport/verbs"
)

// Transport selects how the in-process ranks talk.
type Transport int

const (
	TCP   Transport = iota // loopback TCP between every pair
	Shm                    // shared memory between every pair
	Verbs                  // each rank a node of its own, verbs between them over a fake adapter
	// ShmRead is shared memory where messages above the eager limit move
	// by single copy, never as chains (Options.ShmReadFirst: what the node
	// agent sets where it measured that faster).
	ShmRead
)

func (t Transport) String() string {
	switch t {
	case Shm:
		return "shm"
	case ShmRead:
		return "shm-read"
	case Verbs:
		return "verbs"
	}
	return "tcp"
}

// Store is an in-memory comm.KeyValueStore shared by the ranks of one
// in-process world; its Fence is a real barrier of all of them.
type Store struct {
	n    int
	mu   sync.Mutex
	cond *sync.Cond
	kv   map[string][]byte
	// fence state
	arrived int
	gen     int
	failed  error // a rank could not start: fences fail instead of waiting for it
}

// Fail makes every fence, now and later, return err: a rank that could
// not start will never arrive.
func (s *Store) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = err
	}
	s.cond.Broadcast()
}

// NewStore returns a store for n ranks.
func NewStore(n int) *Store {
	s := &Store{n: n, kv: make(map[string][]byte)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *Store) Put(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[key] = append([]byte(nil), value...)
	return nil
}

func (s *Store) Fence() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	gen := s.gen
	s.arrived++
	if s.arrived == s.n {
		s.arrived = 0
		s.gen++
		s.cond.Broadcast()
		return nil
	}
	for gen == s.gen && s.failed == nil {
		s.cond.Wait()
	}
	if gen == s.gen {
		return s.failed
	}
	return nil
}

func (s *Store) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[key]
	if !ok {
		return nil, fmt.Errorf("key %q not published", key)
	}
	return v, nil
}

// Worlds starts n in-process ranks over tr and returns their world
// communicators, indexed by rank. They are finalized when the test ends.
func Worlds(tb testing.TB, n int, tr Transport) []*comm.Comm {
	tb.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	job := "test-" + hex.EncodeToString(secret[:6])
	store := NewStore(n)
	fabric := verbs.NewFabric()
	worlds := make([]*comm.Comm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := comm.Options{Rank: r, Size: n, LocalRank: r, LocalSize: n, JobID: job, Secret: secret, KV: store,
				TCPAdvertise: "127.0.0.1", Node: "commtest-" + job,
				// More ranks than CPUs: waiting ranks must give way.
				Oversubscribed: n > runtime.GOMAXPROCS(0)}
			switch tr {
			case TCP:
				o.ForceTCP, o.NoShm = true, true
			case Shm:
			case ShmRead:
				o.ShmReadFirst = true
			case Verbs:
				o.Transport, o.VerbsDevice = "verbs", fabric.Open(fmt.Sprintf("fake%d", r))
				o.Node, o.LocalRank, o.LocalSize = fmt.Sprintf("commtest-%s-%d", job, r), 0, 1
			}
			worlds[r], errs[r] = comm.Start(o)
			if errs[r] != nil {
				store.Fail(fmt.Errorf("rank %d did not start: %w", r, errs[r]))
			}
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			var started []*comm.Comm
			for _, w := range worlds {
				if w != nil {
					started = append(started, w)
				}
			}
			Finalize(nil, started) // their fences fail: they only close
			tb.Fatalf("start rank %d of %d: %v", r, n, err)
		}
	}
	tb.Cleanup(func() { Finalize(tb, worlds) })
	return worlds
}

// Finalize finalizes every rank concurrently (Finalize is collective).
func Finalize(tb testing.TB, worlds []*comm.Comm) {
	var wg sync.WaitGroup
	errs := make([]error, len(worlds))
	for r, w := range worlds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = w.Finalize()
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil && tb != nil {
			tb.Errorf("finalize rank %d: %v", r, err)
		}
	}
}

// Run calls f for every rank concurrently and reports each rank's error.
func Run(tb testing.TB, worlds []*comm.Comm, f func(c *comm.Comm) error) {
	tb.Helper()
	errs := make([]error, len(worlds))
	var wg sync.WaitGroup
	for r, w := range worlds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs[r] = fmt.Errorf("panic: %v", p)
				}
			}()
			errs[r] = f(w)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			tb.Errorf("rank %d: %v", r, err)
		}
	}
}
