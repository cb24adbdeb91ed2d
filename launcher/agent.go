//go:build linux

package launcher

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/jobfiles"
	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/internal/wire"
)

// AgentConfig configures a node agent.
type AgentConfig struct {
	Node   int    // index of this host in the plan
	Secret []byte // the job secret
	// TCPAddr is the address ranks of this host advertise for TCP ("": let
	// the agent use its own address on the link to mpirun).
	TCPAddr string
	Logger  *zap.Logger
	// MeasureMedium, when set, tells the host's ranks how messages above
	// the shared-memory eager limit move faster (see MediumProbe).
	MeasureMedium MediumProbe
}

// MediumProbe measures, between a thread on cpu from and one on cpu to,
// whether messages above the shared-memory eager limit move faster by
// single copy than as chains through a ring; detail says what it
// measured. mpirun's main passes the shared-memory transport's
// (shm.MeasureMedium): the launcher does not import the transports, whose
// ranks it only starts.
type MediumProbe func(from, to int) (readWins bool, detail string, err error)

// agent runs the ranks of one host. Its reader goroutine (run) handles
// mpirun's messages; one goroutine per rank waits for the process, two
// forward its output, one reads its bootstrap connection.
type agent struct {
	cfg      AgentConfig
	log      *zap.Logger
	up       *bootstrap.Conn
	hostname string
	spawner  *spawner

	launch   *bootstrap.Launch
	dir      string
	ln       *net.UnixListener
	segments []string       // the host's segments, reserved before its ranks start
	segEnv   map[int]string // per rank: its segment's environment entry
	medium   string         // EnvShmMedium's value for this host's ranks, "" when not measured
	oom      oomTracker     // OOM kill counters of the ranks' memory cgroups

	mu          sync.Mutex
	ranks       map[int]*localRank
	fencePair   []bootstrap.KV
	fenced      int  // ranks that entered the current fence
	fenceOpen   bool // some rank entered the current fence
	fenceBroken bool // a rank exited while the others wait in a fence
	stdin       chan []byte
	stopping    bool

	wg sync.WaitGroup // rank goroutines
}

type localRank struct {
	spec        bootstrap.RankSpec
	cmd         *exec.Cmd
	child       *linux.Child // nil where pidfds are missing: then cmd.Process.Wait
	pid         int
	conn        *bootstrap.Conn
	connDone    chan struct{} // closed when the rank's bootstrap link is read to its end
	initialized bool
	finalized   bool
	inFence     bool
	exited      bool
	exitCode    int
	cgroups     rankCgroups // its memory cgroups, to tell an OOM kill from kill -9
}

// RunAgent serves mpirun on conn (after the handshake) until mpirun closes
// it: it starts the ranks it is told to, forwards their I/O and exits, and
// kills them all when the link to mpirun ends for any reason.
func RunAgent(conn *bootstrap.Conn, cfg AgentConfig) error {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	host, _ := os.Hostname()
	a := &agent{cfg: cfg, log: log.With(zap.Int("node", cfg.Node), zap.String("host", host)), up: conn,
		hostname: host, ranks: make(map[int]*localRank), spawner: newSpawner()}
	defer a.cleanup()
	topo, err := localTopology()
	if err != nil {
		return fmt.Errorf("agent on %s: %w", host, err)
	}
	// What jobs of this user left when their agents were killed.
	jobfiles.Sweep(shmDir)
	jobfiles.SweepDirs("")
	hello := &bootstrap.AgentHello{Node: cfg.Node, Hostname: host, Pid: os.Getpid(), Topology: topo.Append(nil)}
	if err := conn.SendMsg(hello); err != nil {
		return err
	}
	for {
		t, body, err := conn.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("agent on %s: link to mpirun: %w", host, err)
		}
		if err := a.handle(t, body); err != nil {
			a.log.Error("bad message from mpirun", zap.Stringer("type", t), zap.Error(err))
			return err
		}
	}
}

func (a *agent) handle(t bootstrap.Type, body []byte) error {
	switch t {
	case bootstrap.TLaunch:
		l, err := bootstrap.ParseLaunch(body)
		if err != nil {
			return err
		}
		a.start(l)
	case bootstrap.TFenceDone:
		a.mu.Lock()
		var conns []*bootstrap.Conn
		for _, r := range a.ranks {
			if r.conn != nil && !r.exited {
				conns = append(conns, r.conn)
			}
		}
		a.mu.Unlock()
		for _, c := range conns {
			c.Send(bootstrap.TFenceDone, body)
		}
	case bootstrap.TSignal:
		m, err := bootstrap.ParseSignal(body)
		if err != nil {
			return err
		}
		a.signalAll(syscall.Signal(m.Signal))
	case bootstrap.TStdin:
		a.mu.Lock()
		ch := a.stdin
		a.mu.Unlock()
		if ch == nil {
			a.up.Send(bootstrap.TStdinAck, nil)
			return nil
		}
		ch <- body // the stdin goroutine acks once written
	case bootstrap.TQuery:
		a.mu.Lock()
		for _, r := range a.ranks {
			if r.conn != nil && !r.exited && !r.finalized {
				r.conn.Send(bootstrap.TQuery, nil)
			} else if !r.exited {
				text := "running, not connected to the runtime"
				if r.finalized {
					text = "finalized, exiting"
				}
				a.up.SendMsg(&bootstrap.Report{Rank: r.spec.Rank, Text: text})
			}
		}
		a.mu.Unlock()
	default:
		return fmt.Errorf("unexpected %v message", t)
	}
	return nil
}

// start launches the ranks of l on this host.
func (a *agent) start(l *bootstrap.Launch) {
	a.launch = l
	dir, err := jobfiles.TempDir(l.JobID)
	if err == nil {
		a.dir = dir
		a.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "agent.sock"), Net: "unix"})
	}
	if err != nil {
		for _, spec := range l.Ranks {
			a.up.SendMsg(&bootstrap.Exited{Rank: spec.Rank, Err: "agent cannot make its rank socket: " + err.Error()})
		}
		return
	}
	a.wg.Add(1)
	go a.acceptRanks()

	err = a.checkTasks(l)
	if err == nil {
		err = a.reserveSegments(l)
	}
	if err != nil {
		for _, spec := range l.Ranks {
			a.up.SendMsg(&bootstrap.Exited{Rank: spec.Rank, Code: 1, Err: err.Error()})
		}
		return
	}
	env := a.jobEnv(l)
	failAt := debugKnob("fail_spawn") // tests: the spawn of this local rank (1-based) fails
	var spawnErr error
	for i, spec := range l.Ranks {
		r := &localRank{spec: spec}
		a.mu.Lock()
		a.ranks[spec.Rank] = r
		a.mu.Unlock()
		if spawnErr != nil {
			// A rank before this one could not start: the job fails, so
			// start no more (mpirun stops those that did start).
			a.mu.Lock()
			r.exited = true
			a.mu.Unlock()
			a.up.SendMsg(&bootstrap.Exited{Rank: spec.Rank, Code: 1, Err: "not started: " + spawnErr.Error()})
			continue
		}
		var err error
		if failAt == i+1 {
			err = &spawnError{code: 1, msg: fmt.Sprintf("cannot start %s on %s: injected failure (PARLEY_DEBUG=fail_spawn)", l.Program, a.hostname)}
		} else {
			err = a.spawn(r, env)
		}
		if err != nil {
			spawnErr = err
			a.mu.Lock()
			r.exited = true
			a.mu.Unlock()
			code := 127
			var se *spawnError
			if errors.As(err, &se) {
				code = se.code
			}
			a.up.SendMsg(&bootstrap.Exited{Rank: spec.Rank, Code: code, Err: err.Error()})
			continue
		}
		a.up.SendMsg(&bootstrap.Started{Rank: spec.Rank, Pid: r.pid})
	}
}

// jobEnv is the environment every rank of this host gets.
func (a *agent) jobEnv(l *bootstrap.Launch) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	tcpAddr := a.cfg.TCPAddr
	if tcpAddr == "" {
		if la, ok := a.up.NetConn().LocalAddr().(*net.TCPAddr); ok {
			tcpAddr = la.IP.String()
		} else {
			tcpAddr = "127.0.0.1"
		}
	}
	env = append(env,
		bootstrap.EnvAgent+"=unix:"+a.ln.Addr().String(),
		bootstrap.EnvLocalSize+"="+strconv.Itoa(len(l.Ranks)),
		bootstrap.EnvNode+"="+a.hostname,
		bootstrap.EnvTCPAddr+"="+tcpAddr,
	)
	if a.medium != "" {
		env = append(env, bootstrap.EnvShmMedium+"="+a.medium)
	}
	// The launch's own entries come last, so they win (exec uses the last
	// of duplicate keys): -x PARLEY_NODE_ID=... overrides the host name.
	return append(env, l.Env...)
}

func (a *agent) spawn(r *localRank, env []string) error {
	l := a.launch
	if fi, err := os.Stat(l.Wdir); err != nil || !fi.IsDir() {
		return &spawnError{code: 1, msg: fmt.Sprintf("working directory %s does not exist on %s", l.Wdir, a.hostname)}
	}
	cmd := exec.Command(l.Program, l.Args...)
	cmd.Env = append(append([]string(nil), env...), r.spec.Env...)
	if e := a.segEnv[r.spec.Rank]; e != "" {
		cmd.Env = append(cmd.Env, e)
	}
	cmd.Dir = l.Wdir
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	var errR, errW *os.File
	if l.Merge {
		// --merge-stderr-to-stdout: one pipe, so the two streams keep
		// their order.
		cmd.Stdout, cmd.Stderr = outW, outW
	} else {
		errR, errW, err = os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			return err
		}
		cmd.Stdout, cmd.Stderr = outW, errW
	}
	var stdinW *os.File
	if r.spec.Rank == 0 && l.Stdin {
		var stdinR *os.File
		stdinR, stdinW, err = os.Pipe()
		if err != nil {
			return err
		}
		cmd.Stdin = stdinR
		defer stdinR.Close()
	}
	err = a.spawner.Start(cmd, r.spec.Cpus)
	outW.Close()
	if errW != nil {
		errW.Close()
	}
	if err != nil {
		outR.Close()
		if errR != nil {
			errR.Close()
		}
		if stdinW != nil {
			stdinW.Close()
		}
		return execError(l.Program, a.hostname, cmd, err)
	}
	r.cmd, r.pid = cmd, cmd.Process.Pid
	r.cgroups = a.oom.watch(r.pid)
	if c, err := linux.Watch(r.pid); err == nil {
		// Waited for through its pidfd, without an OS thread per rank;
		// os/exec's own handle is released.
		r.child = c
		cmd.Process.Release()
	}
	if stdinW != nil {
		ch := make(chan []byte, 1)
		a.mu.Lock()
		a.stdin = ch
		a.mu.Unlock()
		a.wg.Add(1)
		go a.forwardStdin(stdinW, ch)
	}
	var outputs sync.WaitGroup
	outputs.Add(1)
	go a.forwardOutput(r.spec.Rank, bootstrap.Stdout, outR, &outputs)
	if errR != nil {
		outputs.Add(1)
		go a.forwardOutput(r.spec.Rank, bootstrap.Stderr, errR, &outputs)
	}
	a.wg.Add(1)
	go a.waitRank(r, &outputs)
	return nil
}

func (a *agent) forwardOutput(rank, stream int, f *os.File, wg *sync.WaitGroup) {
	defer wg.Done()
	defer f.Close()
	var split lineSplitter
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if lines := split.feed(buf[:n]); len(lines) > 0 {
				a.up.SendMsg(&bootstrap.Output{Rank: rank, Stream: stream, Data: lines})
			}
		}
		if err != nil {
			break
		}
	}
	if rest := split.flush(); len(rest) > 0 {
		a.up.SendMsg(&bootstrap.Output{Rank: rank, Stream: stream, Data: rest})
	}
}

// forwardStdin writes what mpirun reads from its stdin to rank 0, one
// chunk at a time: mpirun sends the next chunk after the ack, so a rank
// that does not read its stdin holds up only the stdin stream.
func (a *agent) forwardStdin(w *os.File, ch <-chan []byte) {
	defer a.wg.Done()
	defer w.Close()
	for data := range ch {
		if len(data) == 0 {
			return // end of input
		}
		_, err := w.Write(data)
		a.up.Send(bootstrap.TStdinAck, nil)
		if err != nil {
			// The rank closed its stdin; drain and ack the rest.
			for d := range ch {
				a.up.Send(bootstrap.TStdinAck, nil)
				if len(d) == 0 {
					return
				}
			}
			return
		}
	}
}

// outputGrace is how long after a rank's exit the agent waits for its
// output to end (a child of the rank may hold the pipe open).
const outputGrace = 2 * time.Second

func (a *agent) waitRank(r *localRank, outputs *sync.WaitGroup) {
	defer a.wg.Done()
	m := &bootstrap.Exited{Rank: r.spec.Rank, Pid: r.pid}
	if r.child != nil {
		code, sig, err := r.child.Wait()
		if err != nil {
			a.log.Error("waiting for a rank", zap.Int("rank", r.spec.Rank), zap.Error(err))
		}
		m.Code, m.Signal = code, sig
	} else {
		state, _ := r.cmd.Process.Wait()
		if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			m.Signal = int(ws.Signal())
		} else {
			m.Code = state.ExitCode()
		}
	}
	if m.Signal != 0 {
		m.Code = 0
		if m.Signal == int(syscall.SIGKILL) {
			_, m.OOM = a.oom.killed(r.cgroups)
		}
		// A death by signal is reported at once, before the output is
		// drained: the peers of a killed rank see their links fail within
		// microseconds and may fail themselves, and mpirun must learn of
		// the cause first to name it (not a survivor's consequent error).
		a.mu.Lock()
		r.exited = true
		r.exitCode = m.Code
		m.Initialized, m.Finalized = r.initialized, r.finalized
		a.mu.Unlock()
		a.up.SendMsg(m)
	}
	flushed := make(chan struct{})
	go func() { outputs.Wait(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(outputGrace):
	}
	// Kill whatever the rank left in its process group.
	syscall.Kill(-r.pid, syscall.SIGKILL)
	if m.Signal != 0 {
		a.checkFence()
		return
	}
	// Read what the rank said on its bootstrap link before it exited (its
	// Finalize), so the exit report is complete.
	a.mu.Lock()
	connDone := r.connDone
	a.mu.Unlock()
	if connDone != nil {
		select {
		case <-connDone:
		case <-time.After(outputGrace):
		}
	}
	a.mu.Lock()
	r.exited = true
	r.exitCode = m.Code
	m.Initialized, m.Finalized = r.initialized, r.finalized
	a.mu.Unlock()
	a.up.SendMsg(m)
	a.checkFence()
}

// acceptRanks serves the ranks' bootstrap connections.
func (a *agent) acceptRanks() {
	defer a.wg.Done()
	gate := wire.NewGate()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		if !gate.Enter() {
			c.Close() // too many handshakes in progress (see wire.Gate)
			continue
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.serveRank(c, gate.Leave)
		}()
	}
}

func (a *agent) serveRank(c net.Conn, handshakeDone func()) {
	conn, hello, err := bootstrap.Accept(c, a.cfg.Secret, bootstrap.RoleRank, wire.HandshakeTimeout)
	handshakeDone()
	if err != nil {
		a.log.Warn("refused a rank connection", zap.Error(err))
		return
	}
	defer conn.Close()
	h, err := bootstrap.ParseRankHello(hello)
	a.mu.Lock()
	r := a.ranks[h.Rank]
	if err != nil || r == nil || r.conn != nil {
		a.mu.Unlock()
		a.log.Warn("refused a rank connection: unknown or duplicate rank", zap.Int("rank", h.Rank))
		return
	}
	r.conn, r.initialized = conn, true
	r.connDone = make(chan struct{})
	defer close(r.connDone)
	a.mu.Unlock()
	for {
		t, body, err := conn.Recv()
		if err != nil {
			a.rankLinkClosed(r)
			return
		}
		switch t {
		case bootstrap.TFence:
			f, err := bootstrap.ParseFence(body)
			if err != nil {
				a.log.Warn("bad fence from rank", zap.Int("rank", h.Rank), zap.Error(err))
				continue
			}
			a.mu.Lock()
			a.fencePair = append(a.fencePair, f.Pairs...)
			if !r.inFence {
				r.inFence = true
				a.fenced++
			}
			a.fenceOpen = true
			a.mu.Unlock()
			a.checkFence()
		case bootstrap.TAbort, bootstrap.TReport, bootstrap.TNotice:
			a.up.Send(t, body)
		case bootstrap.TFinalize:
			a.mu.Lock()
			r.finalized = true
			a.mu.Unlock()
		}
	}
}

// rankLinkClosed handles the end of a rank's bootstrap connection. After
// Finalize that is normal; otherwise, unless the process has exited (its
// exit report says more), the rank has lost the runtime and the job fails.
func (a *agent) rankLinkClosed(r *localRank) {
	time.AfterFunc(500*time.Millisecond, func() {
		a.mu.Lock()
		lost := !r.finalized && !r.exited && !a.stopping
		a.mu.Unlock()
		if lost {
			a.up.SendMsg(&bootstrap.Text{T: bootstrap.TAgentError,
				Text: fmt.Sprintf("rank %d (pid %d on %s) lost its connection to the node agent", r.spec.Rank, r.pid, a.hostname)})
		}
	})
}

// checkFence forwards the fence to mpirun once every rank of this host has
// entered it. A fence needs every rank of the job: one that exited without
// entering it (a program that never called comm.Init, say) leaves the
// others waiting forever, so that ends the job.
func (a *agent) checkFence() {
	a.mu.Lock()
	if !a.fenceOpen {
		a.mu.Unlock()
		return
	}
	for _, r := range a.ranks {
		if r.exited && !r.inFence && r.exitCode == 0 && !a.fenceBroken && !a.stopping {
			a.fenceBroken = true
			a.mu.Unlock()
			a.up.SendMsg(&bootstrap.Text{T: bootstrap.TAgentError,
				Text: fmt.Sprintf("rank %d exited (status 0) while other ranks wait for it in comm.Init or comm.Finalize", r.spec.Rank)})
			return
		}
	}
	if a.fenced < len(a.launch.Ranks) {
		a.mu.Unlock()
		return
	}
	pairs := a.fencePair
	a.fencePair, a.fenced, a.fenceOpen = nil, 0, false
	for _, r := range a.ranks {
		r.inFence = false
	}
	a.mu.Unlock()
	a.up.SendMsg(&bootstrap.Fence{Pairs: pairs})
}

// signalAll delivers sig to every rank's process group.
func (a *agent) signalAll(sig syscall.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		a.stopping = true
	}
	for _, r := range a.ranks {
		if r.cmd != nil && !r.exited {
			syscall.Kill(-r.pid, sig)
		}
	}
}

// cleanup kills what is left, waits for the rank goroutines, and removes
// the job's files on this host.
func (a *agent) cleanup() {
	a.signalAll(syscall.SIGKILL)
	a.mu.Lock()
	if a.stdin != nil {
		close(a.stdin)
		a.stdin = nil
	}
	a.mu.Unlock()
	if a.ln != nil {
		a.ln.Close()
	}
	a.mu.Lock()
	for _, r := range a.ranks {
		if r.conn != nil {
			r.conn.Close()
		}
	}
	a.mu.Unlock()
	a.wg.Wait()
	a.spawner.Stop()
	if a.dir != "" {
		os.RemoveAll(a.dir)
	}
	for _, name := range a.segments {
		os.Remove(filepath.Join(shmDir, name))
	}
}

// shmDir is where segments live.
const shmDir = jobfiles.DefaultDir

// reserveSegments gives the ranks of this host shared memory, all of them
// or none, before any starts: it creates and reserves every rank's segment
// (under names with a random token, so that nobody can plant a file under
// one first). If that fails (too small a /dev/shm, no inodes left, a
// read-only mount), every rank of the host uses TCP, and mpirun says so
// in one line, with the reason; with --transport shm the job fails
// instead. There is never a host where some pairs use shared memory and
// others wait for a TCP listener that does not exist.
func (a *agent) reserveSegments(l *bootstrap.Launch) error {
	mode := envValue(l.Env, bootstrap.EnvTransport)
	n := len(l.Ranks)
	if n < 2 || mode == "tcp" {
		return nil
	}
	token := jobfiles.NewToken()
	names := make([]string, n)
	for i, spec := range l.Ranks {
		names[i] = jobfiles.SegmentName(l.JobID, token, spec.Rank)
	}
	err := jobfiles.Reserve(shmDir, names, jobfiles.SegmentSize(n), os.Getpid())
	a.segEnv = make(map[int]string, n)
	if err != nil {
		if mode == "shm" {
			return fmt.Errorf("--transport shm: no shared memory on %s: %v", a.hostname, err)
		}
		a.up.SendMsg(&bootstrap.Text{T: bootstrap.TNotice, Text: fmt.Sprintf(
			"%s: shared memory is off for this job (%v); its %d ranks talk over TCP, at tens of times the latency of shared memory for small messages",
			a.hostname, err, n)})
		for _, spec := range l.Ranks {
			a.segEnv[spec.Rank] = bootstrap.EnvShm + "=off"
		}
		return nil
	}
	a.segments = names
	for i, spec := range l.Ranks {
		a.segEnv[spec.Rank] = bootstrap.EnvShmSeg + "=" + names[i]
	}
	a.medium = a.measureMedium(l)
	return nil
}

// measureMedium measures how messages above the shared-memory eager limit
// move faster between two cores of this host's ranks (shm.MeasureMedium,
// about a millisecond before the ranks start): "read" or "chain", or ""
// where it cannot tell (one core, process_vm_readv refused), which leaves
// the ranks' default. -x PARLEY_SHM_MEDIUM=... wins over it.
func (a *agent) measureMedium(l *bootstrap.Launch) string {
	if a.cfg.MeasureMedium == nil || envValue(l.Env, bootstrap.EnvShmMedium) != "" {
		return ""
	}
	var cpus []int
	for _, spec := range l.Ranks {
		if len(spec.Cpus) > 0 && !slices.Contains(cpus, spec.Cpus[0]) {
			cpus = append(cpus, spec.Cpus[0])
		}
	}
	if len(cpus) < 2 {
		cpus, _ = linux.Affinity() // unbound ranks: any two of the agent's cpus
	}
	if len(cpus) < 2 {
		return ""
	}
	read, detail, err := a.cfg.MeasureMedium(cpus[0], cpus[1])
	if err != nil {
		a.log.Info("medium messages not measured; ranks use their default", zap.Error(err))
		return ""
	}
	a.log.Info("medium messages measured", zap.String("result", detail), zap.Bool("single copy", read))
	if read {
		return "read"
	}
	return "chain"
}

// envValue returns the value of name in env (the last entry wins, as for
// exec), or "".
func envValue(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

// spawnError is a rank that could not start, with the status a shell
// would give (127: not found; 126: found but not runnable).
type spawnError struct {
	code int
	msg  string
}

func (e *spawnError) Error() string { return e.msg }

// execError explains why exec of program failed.
func execError(program, host string, cmd *exec.Cmd, err error) error {
	switch {
	case errors.Is(err, syscall.E2BIG):
		n := len(program)
		for _, a := range cmd.Args {
			n += len(a) + 1
		}
		for _, e := range cmd.Env {
			n += len(e) + 1
		}
		return &spawnError{code: 126, msg: fmt.Sprintf("cannot start %s on %s: its arguments and environment (%d bytes) exceed the system's limit (E2BIG)", program, host, n)}
	case errors.Is(err, syscall.ENOENT):
		return &spawnError{code: 127, msg: fmt.Sprintf("cannot start %s on %s: no such file (or its interpreter is missing)", program, host)}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &spawnError{code: 126, msg: fmt.Sprintf("cannot start %s on %s: permission denied", program, host)}
	case errors.Is(err, syscall.ENOEXEC):
		return &spawnError{code: 126, msg: fmt.Sprintf("cannot start %s on %s: not a program this host can run", program, host)}
	case errors.Is(err, syscall.EAGAIN):
		return &spawnError{code: 1, msg: fmt.Sprintf("cannot start %s on %s: the user's process limit is reached (EAGAIN)", program, host)}
	}
	return &spawnError{code: 126, msg: fmt.Sprintf("cannot start %s on %s: %v", program, host, err)}
}

// checkTasks refuses, before anything starts, ranks that would not fit the
// processes and threads that may still start on this host (taskLimits).
func (a *agent) checkTasks(l *bootstrap.Launch) error {
	limits := taskLimits()
	if len(limits) == 0 || len(l.Ranks) == 0 {
		return nil
	}
	goProg := isGoProgram(l.Program)
	var need int64
	perRank := int64(1)
	for _, spec := range l.Ranks {
		t := int64(1)
		if goProg {
			procs := len(spec.Cpus)
			if procs == 0 {
				procs, _ = strconv.Atoi(envValue(append(os.Environ(), l.Env...), "GOMAXPROCS"))
			}
			if procs <= 0 {
				procs = runtime.NumCPU()
			}
			t = int64(procs) + goRuntimeThreads
		}
		perRank = max(perRank, t)
		need += t
	}
	tight := limits[0]
	for _, lim := range limits[1:] {
		if lim.avail < tight.avail {
			tight = lim
		}
	}
	if need <= tight.avail {
		return nil
	}
	each := "one process each"
	if goProg {
		each = fmt.Sprintf("a Go rank runs up to %d threads: GOMAXPROCS and %d of the runtime's", perRank, goRuntimeThreads)
	}
	return fmt.Errorf("%d ranks on %s need about %d processes and threads (%s), but only %d more may start here (%s): run fewer ranks on this host, or raise the limit",
		len(l.Ranks), a.hostname, need, each, max(tight.avail, 0), tight.what)
}

// debugKnob reads a test-only knob from PARLEY_DEBUG ("name=value,..."),
// as the agent's environment has it; 0 when absent.
func debugKnob(name string) int {
	for _, kv := range strings.Split(os.Getenv(bootstrap.EnvDebugOpts), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}
