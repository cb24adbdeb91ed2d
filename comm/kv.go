package comm

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/parley-hpc/parley/internal/bootstrap"
)

// A KeyValueStore is how ranks find each other at start-up: each rank puts
// its card, all ranks fence, then any rank can get any card. mpirun's
// agents provide one; so does Slurm's PMI-2; tests provide their own.
type KeyValueStore interface {
	// Put publishes a key for the next Fence.
	Put(key string, value []byte) error
	// Fence returns once every rank has called Fence, with every Put made
	// before it visible to Get.
	Fence() error
	// Get returns the value of a key published before the last Fence.
	Get(key string) ([]byte, error)
}

// kvStore is a KeyValueStore with the runtime's own extras.
type kvStore interface {
	KeyValueStore
	// Abort asks the launcher to end the job with code.
	Abort(code int, msg string) error
	// Finalized tells the launcher the rank finalized; Close follows.
	Finalized() error
	// Notice gives the user a line at default verbosity: mpirun prints it
	// once per job, however many ranks say it.
	Notice(text string) error
	// FenceSyncs reports whether Fence is a barrier: no rank returns
	// before every rank has called it. Finalize adds a barrier of its own
	// where it is not.
	FenceSyncs() bool
	Close() error
}

// plainKV adapts a KeyValueStore given by a program or test, whose Fence
// is a barrier by KeyValueStore's contract (tests break it on purpose:
// loose).
type plainKV struct {
	KeyValueStore
	loose bool
}

func (p plainKV) FenceSyncs() bool      { return !p.loose }
func (plainKV) Abort(int, string) error { return ErrNotSupported }
func (plainKV) Finalized() error        { return nil }
func (plainKV) Notice(string) error     { return nil }
func (plainKV) Close() error            { return nil }

// agentKV is the rank's side of the bootstrap link to its node agent.
type agentKV struct {
	conn *bootstrap.Conn
	rank int

	mu   sync.Mutex
	kv   map[string][]byte
	puts []bootstrap.KV

	fenceDone chan *bootstrap.Fence
	readDone  chan struct{}
	closing   chan struct{}
	onLost    func(error)                    // the agent went away unexpectedly
	describe  func() (string, []int, uint64) // what the rank is blocked in, on whom, and its progress, for a Query
	closeOnce sync.Once
}

func dialAgent(addr string, secret []byte, rank int, timeout time.Duration) (*agentKV, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hello := (&bootstrap.RankHello{Rank: rank, Pid: os.Getpid()}).Append(nil)
	conn, err := bootstrap.Dial(ctx, addr, secret, bootstrap.RoleRank, hello)
	if err != nil {
		return nil, err
	}
	a := &agentKV{conn: conn, rank: rank, kv: make(map[string][]byte),
		fenceDone: make(chan *bootstrap.Fence, 1), readDone: make(chan struct{}), closing: make(chan struct{})}
	return a, nil
}

// start runs the reader; onLost and describe must be set first.
func (a *agentKV) start() { go a.read() }

func (a *agentKV) read() {
	defer close(a.readDone)
	for {
		t, body, err := a.conn.Recv()
		if err != nil {
			select {
			case <-a.closing:
			default:
				if a.onLost != nil {
					a.onLost(fmt.Errorf("lost the connection to the node agent: %w", err))
				}
			}
			close(a.fenceDone)
			return
		}
		switch t {
		case bootstrap.TFenceDone:
			f, err := bootstrap.ParseFence(body)
			if err != nil {
				if a.onLost != nil {
					a.onLost(err)
				}
				continue
			}
			a.fenceDone <- f
		case bootstrap.TQuery:
			m := &bootstrap.Report{Rank: a.rank, Text: "unknown"}
			if a.describe != nil {
				m.Text, m.WaitsOn, m.Progress = a.describe()
			}
			a.conn.SendMsg(m)
		}
	}
}

func (a *agentKV) Put(key string, value []byte) error {
	a.mu.Lock()
	a.puts = append(a.puts, bootstrap.KV{Key: key, Value: value})
	a.mu.Unlock()
	return nil
}

func (a *agentKV) Fence() error {
	a.mu.Lock()
	f := &bootstrap.Fence{Pairs: a.puts}
	a.puts = nil
	a.mu.Unlock()
	if err := a.conn.SendMsg(f); err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	done, ok := <-a.fenceDone
	if !ok {
		return errors.New("fence: the node agent went away")
	}
	a.mu.Lock()
	for _, kv := range done.Pairs {
		a.kv[kv.Key] = kv.Value
	}
	a.mu.Unlock()
	return nil
}

func (a *agentKV) Get(key string) ([]byte, error) {
	a.mu.Lock()
	v, ok := a.kv[key]
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("key %q was not published", key)
	}
	return v, nil
}

func (a *agentKV) Abort(code int, msg string) error {
	return a.conn.SendMsg(&bootstrap.Abort{Rank: a.rank, Code: code, Message: msg})
}

func (a *agentKV) Finalized() error { return a.conn.Send(bootstrap.TFinalize, nil) }

// FenceSyncs: the agents answer a fence once every rank of the job is in
// it.
func (a *agentKV) FenceSyncs() bool { return true }

func (a *agentKV) Notice(text string) error {
	return a.conn.SendMsg(&bootstrap.Text{T: bootstrap.TNotice, Text: text})
}

func (a *agentKV) Close() error {
	a.closeOnce.Do(func() {
		close(a.closing)
		a.conn.Close()
		<-a.readDone
	})
	return nil
}

// memKV is the store of a world of one.
type memKV struct {
	mu sync.Mutex
	kv map[string][]byte
}

func (m *memKV) Put(key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kv == nil {
		m.kv = make(map[string][]byte)
	}
	m.kv[key] = value
	return nil
}
func (m *memKV) Fence() error { return nil }
func (m *memKV) Get(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.kv[key]
	if !ok {
		return nil, fmt.Errorf("key %q was not published", key)
	}
	return v, nil
}

// envInt reads an integer PARLEY_ variable.
func envInt(name string) (int, error) {
	v := os.Getenv(name)
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("environment variable %s=%q is not a number", name, v)
	}
	return n, nil
}

func decodeSecret(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("environment variable %s is not a hex secret", bootstrap.EnvSecret)
	}
	return b, nil
}
