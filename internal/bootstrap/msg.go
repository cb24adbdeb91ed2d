package bootstrap

import (
	"fmt"

	"github.com/parley-hpc/parley/internal/wire"
)

// Type names a bootstrap message.
type Type uint8

// The message types. The arrow says who sends to whom.
const (
	TAgentHello Type = iota + 1 // agent -> mpirun: AgentHello
	TLaunch                     // mpirun -> agent: Launch
	TStarted                    // agent -> mpirun: Started
	TOutput                     // agent -> mpirun: Output
	TExited                     // agent -> mpirun: Exited
	TFence                      // rank -> agent, agent -> mpirun: Fence
	TFenceDone                  // mpirun -> agent, agent -> rank: Fence (the union)
	TAbort                      // rank -> agent, agent -> mpirun: Abort
	TFinalize                   // rank -> agent: Finalize
	TStdin                      // mpirun -> agent: Stdin (empty data: end of input)
	TStdinAck                   // agent -> mpirun: StdinAck
	TSignal                     // mpirun -> agent: Signal
	TQuery                      // mpirun -> agent, agent -> rank: Query
	TReport                     // rank -> agent, agent -> mpirun: Report
	TRankHello                  // rank -> agent: RankHello
	TAgentError                 // agent -> mpirun: AgentError
	TNotice                     // rank -> agent, agent -> mpirun: Text, a line mpirun prints once
	typeEnd
)

var typeNames = [...]string{
	TAgentHello: "agent-hello", TLaunch: "launch", TStarted: "started", TOutput: "output",
	TExited: "exited", TFence: "fence", TFenceDone: "fence-done", TAbort: "abort",
	TFinalize: "finalize", TStdin: "stdin", TStdinAck: "stdin-ack", TSignal: "signal",
	TQuery: "query", TReport: "report", TRankHello: "rank-hello", TAgentError: "agent-error", TNotice: "notice",
}

func (t Type) String() string {
	if t > 0 && t < typeEnd {
		return typeNames[t]
	}
	return fmt.Sprintf("message-type-%d", uint8(t))
}

// A Msg is a bootstrap message body.
type Msg interface {
	Type() Type
	Append(b []byte) []byte
}

// AgentHello is an agent's first message after the handshake: who it is
// and what its host offers, for mpirun's plan.
type AgentHello struct {
	Node     int    // index of the agent's host in the allocation
	Hostname string // os.Hostname() where the agent runs
	Pid      int
	Topology []byte // the host's topology (internal/topology encoding)
}

func (AgentHello) Type() Type { return TAgentHello }
func (m *AgentHello) Append(b []byte) []byte {
	b = wire.AppendVarint(b, int64(m.Node))
	b = wire.AppendString(b, m.Hostname)
	b = wire.AppendVarint(b, int64(m.Pid))
	return wire.AppendBytes(b, m.Topology)
}

// ParseAgentHello decodes an AgentHello body.
func ParseAgentHello(b []byte) (*AgentHello, error) {
	r := wire.NewReader(b)
	m := &AgentHello{Node: r.Int(), Hostname: r.String(), Pid: r.Int(), Topology: r.Bytes()}
	return m, done(r, TAgentHello)
}

// RankSpec is what an agent needs to start one rank.
type RankSpec struct {
	Rank      int
	LocalRank int
	Cpus      []int    // cpus to bind to before exec; empty: unbound
	Env       []string // KEY=VALUE entries for this rank only
}

// Launch tells an agent what to run.
type Launch struct {
	JobID   string
	Program string   // path of the executable, resolved by mpirun
	Args    []string // argv[1:]
	Env     []string // KEY=VALUE entries for every rank, on top of the agent's environment
	Wdir    string   // working directory ("" keeps the agent's)
	Size    int      // ranks in the job
	Stdin   bool     // rank 0, if here, reads mpirun's stdin (TStdin messages)
	Merge   bool     // the ranks' stderr goes into their stdout (one pipe, order kept)
	Ranks   []RankSpec
}

func (Launch) Type() Type { return TLaunch }
func (m *Launch) Append(b []byte) []byte {
	b = wire.AppendString(b, m.JobID)
	b = wire.AppendString(b, m.Program)
	b = wire.AppendStrings(b, m.Args)
	b = wire.AppendStrings(b, m.Env)
	b = wire.AppendString(b, m.Wdir)
	b = wire.AppendVarint(b, int64(m.Size))
	flags := uint64(0)
	if m.Stdin {
		flags |= 1
	}
	if m.Merge {
		flags |= 2
	}
	b = wire.AppendUvarint(b, flags)
	b = wire.AppendUvarint(b, uint64(len(m.Ranks)))
	for _, r := range m.Ranks {
		b = wire.AppendVarint(b, int64(r.Rank))
		b = wire.AppendVarint(b, int64(r.LocalRank))
		b = wire.AppendInts(b, r.Cpus)
		b = wire.AppendStrings(b, r.Env)
	}
	return b
}

// ParseLaunch decodes a Launch body.
func ParseLaunch(b []byte) (*Launch, error) {
	r := wire.NewReader(b)
	m := &Launch{JobID: r.String(), Program: r.String(), Args: r.Strings(), Env: r.Strings(),
		Wdir: r.String(), Size: r.Int()}
	flags := r.Uvarint()
	m.Stdin, m.Merge = flags&1 != 0, flags&2 != 0
	n := r.Uvarint()
	if n > uint64(r.Len()) {
		return nil, fmt.Errorf("%w: launch lists %d ranks in %d bytes", wire.ErrMalformed, n, r.Len())
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		m.Ranks = append(m.Ranks, RankSpec{Rank: r.Int(), LocalRank: r.Int(), Cpus: r.Ints(), Env: r.Strings()})
	}
	return m, done(r, TLaunch)
}

// Started reports that a rank's process is running.
type Started struct{ Rank, Pid int }

func (Started) Type() Type { return TStarted }
func (m *Started) Append(b []byte) []byte {
	return wire.AppendVarint(wire.AppendVarint(b, int64(m.Rank)), int64(m.Pid))
}

// ParseStarted decodes a Started body.
func ParseStarted(b []byte) (*Started, error) {
	r := wire.NewReader(b)
	m := &Started{Rank: r.Int(), Pid: r.Int()}
	return m, done(r, TStarted)
}

// Output streams.
const (
	Stdout = 1
	Stderr = 2
)

// Output carries whole lines a rank wrote (or, for a line longer than the
// agent's buffer, a piece of one).
type Output struct {
	Rank   int
	Stream int // Stdout or Stderr
	Data   []byte
}

func (Output) Type() Type { return TOutput }
func (m *Output) Append(b []byte) []byte {
	b = wire.AppendVarint(b, int64(m.Rank))
	b = wire.AppendVarint(b, int64(m.Stream))
	return wire.AppendBytes(b, m.Data)
}

// ParseOutput decodes an Output body. Data aliases b.
func ParseOutput(b []byte) (*Output, error) {
	r := wire.NewReader(b)
	m := &Output{Rank: r.Int(), Stream: r.Int(), Data: r.Bytes()}
	return m, done(r, TOutput)
}

// Exited reports the end of a rank's process, or its failure to start.
type Exited struct {
	Rank        int
	Pid         int
	Code        int    // exit status, when Signal is 0
	Signal      int    // the signal that ended the process, or 0
	Initialized bool   // the rank called comm.Init
	Finalized   bool   // the rank called comm.Finalize
	Err         string // why it could not start, or ""
	OOM         string // killed by the out-of-memory killer: the limit it hit ("cgroup limit 2.0 GiB"); "" otherwise
}

func (Exited) Type() Type { return TExited }
func (m *Exited) Append(b []byte) []byte {
	b = wire.AppendVarint(b, int64(m.Rank))
	b = wire.AppendVarint(b, int64(m.Pid))
	b = wire.AppendVarint(b, int64(m.Code))
	b = wire.AppendVarint(b, int64(m.Signal))
	flags := uint64(0)
	if m.Initialized {
		flags |= 1
	}
	if m.Finalized {
		flags |= 2
	}
	b = wire.AppendUvarint(b, flags)
	b = wire.AppendString(b, m.Err)
	return wire.AppendString(b, m.OOM)
}

// ParseExited decodes an Exited body.
func ParseExited(b []byte) (*Exited, error) {
	r := wire.NewReader(b)
	m := &Exited{Rank: r.Int(), Pid: r.Int(), Code: r.Int(), Signal: r.Int()}
	flags := r.Uvarint()
	m.Initialized, m.Finalized = flags&1 != 0, flags&2 != 0
	m.Err = r.String()
	m.OOM = r.String()
	return m, done(r, TExited)
}

// KV is one published key and value.
type KV struct {
	Key   string
	Value []byte
}

// Fence carries key-value pairs: from a rank or agent, those put since the
// last fence; in a TFenceDone, the union of all of them.
type Fence struct{ Pairs []KV }

// Type returns TFence; the same body is sent as TFenceDone with Send.
func (Fence) Type() Type { return TFence }
func (m *Fence) Append(b []byte) []byte {
	b = wire.AppendUvarint(b, uint64(len(m.Pairs)))
	for _, kv := range m.Pairs {
		b = wire.AppendString(b, kv.Key)
		b = wire.AppendBytes(b, kv.Value)
	}
	return b
}

// ParseFence decodes a Fence (or FenceDone) body.
func ParseFence(b []byte) (*Fence, error) {
	r := wire.NewReader(b)
	n := r.Uvarint()
	if n > uint64(r.Len()) {
		return nil, fmt.Errorf("%w: fence lists %d pairs in %d bytes", wire.ErrMalformed, n, r.Len())
	}
	m := &Fence{Pairs: make([]KV, 0, n)}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		k := r.String()
		v := r.Bytes()
		m.Pairs = append(m.Pairs, KV{Key: k, Value: v})
	}
	return m, done(r, TFence)
}

// Abort is a rank's request to end the job (comm.Abort).
type Abort struct {
	Rank    int
	Code    int
	Message string
}

func (Abort) Type() Type { return TAbort }
func (m *Abort) Append(b []byte) []byte {
	b = wire.AppendVarint(b, int64(m.Rank))
	b = wire.AppendVarint(b, int64(m.Code))
	return wire.AppendString(b, m.Message)
}

// ParseAbort decodes an Abort body.
func ParseAbort(b []byte) (*Abort, error) {
	r := wire.NewReader(b)
	m := &Abort{Rank: r.Int(), Code: r.Int(), Message: r.String()}
	return m, done(r, TAbort)
}

// Signal asks an agent to deliver a signal to all its ranks.
type Signal struct{ Signal int }

func (Signal) Type() Type                { return TSignal }
func (m *Signal) Append(b []byte) []byte { return wire.AppendVarint(b, int64(m.Signal)) }

// ParseSignal decodes a Signal body.
func ParseSignal(b []byte) (*Signal, error) {
	r := wire.NewReader(b)
	m := &Signal{Signal: r.Int()}
	return m, done(r, TSignal)
}

// Report is a rank's answer to a Query: what it is doing or blocked in.
type Report struct {
	Rank     int
	Progress uint64 // events the rank has handled so far: unchanged between two reports means no progress
	WaitsOn  []int  // the world ranks its blocked goroutines wait for (none: not blocked, or any rank)
	Text     string // one line per blocked goroutine, and the messages no receive matches
}

// maxReportPeers bounds WaitsOn in a decoded report.
const maxReportPeers = 1 << 16

func (Report) Type() Type { return TReport }
func (m *Report) Append(b []byte) []byte {
	b = wire.AppendVarint(b, int64(m.Rank))
	b = wire.AppendUvarint(b, m.Progress)
	b = wire.AppendUvarint(b, uint64(len(m.WaitsOn)))
	for _, w := range m.WaitsOn {
		b = wire.AppendVarint(b, int64(w))
	}
	return wire.AppendString(b, m.Text)
}

// ParseReport decodes a Report body.
func ParseReport(b []byte) (*Report, error) {
	r := wire.NewReader(b)
	m := &Report{Rank: r.Int(), Progress: r.Uvarint()}
	n := r.Uvarint()
	if n > maxReportPeers {
		return nil, fmt.Errorf("%v message: %d peers waited on is implausible", TReport, n)
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		m.WaitsOn = append(m.WaitsOn, r.Int())
	}
	m.Text = r.String()
	return m, done(r, TReport)
}

// RankHello is a rank's first message to its agent.
type RankHello struct{ Rank, Pid int }

func (RankHello) Type() Type { return TRankHello }
func (m *RankHello) Append(b []byte) []byte {
	return wire.AppendVarint(wire.AppendVarint(b, int64(m.Rank)), int64(m.Pid))
}

// ParseRankHello decodes a RankHello body.
func ParseRankHello(b []byte) (*RankHello, error) {
	r := wire.NewReader(b)
	m := &RankHello{Rank: r.Int(), Pid: r.Int()}
	return m, done(r, TRankHello)
}

// Text is the body of messages that carry one string (TAgentError,
// TNotice).
type Text struct {
	T    Type
	Text string
}

func (m Text) Type() Type              { return m.T }
func (m *Text) Append(b []byte) []byte { return wire.AppendString(b, m.Text) }

// ParseText decodes a one-string body.
func ParseText(b []byte) (string, error) {
	r := wire.NewReader(b)
	s := r.String()
	return s, done(r, 0)
}

func done(r *wire.Reader, t Type) error {
	if err := r.Done(); err != nil {
		if t == 0 {
			return err
		}
		return fmt.Errorf("%v message: %w", t, err)
	}
	return nil
}
