//go:build linux

package launcher

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/internal/topology"
)

// Exit statuses of mpirun beyond the ranks' own.
const (
	ExitTimeout = 124 // --timeout ended the job
	exitFailure = 1
)

// job is mpirun's state for one run. One goroutine (loop) owns it; the
// agents' reader goroutines send it events.
type job struct {
	cfg    Config
	log    *zap.Logger
	out    *printer
	id     string
	secret []byte
	prog   string

	agents []*agentLink
	plan   *Plan
	ranks  []rankState
	alive  int
	events chan event

	fencePairs []bootstrap.KV
	fenced     map[int]bool // agents that entered the current fence

	failure    *failure
	suspect    *failure // a failure that may be the consequence of another (see suspectFailure)
	suspectT   *time.Timer
	stopping   bool
	interrupts int
	killTimer  *time.Timer
	hang       *hangReport     // the hang report being gathered, or nil
	noticed    map[string]bool // notices printed already
	started    time.Time       // when the ranks were launched
	fromSlurm  bool            // the hosts are a Slurm allocation's
	allocFrom  string          // where the hosts came from, for --display-allocation

	stdinAck chan struct{}
	done     chan struct{} // closed when the loop ends
	cleanups []func()
	starters []*starter
}

type rankState struct {
	pid                    int
	host                   string
	exited                 bool
	initialized, finalized bool
}

type failure struct {
	code int
	msg  string
	rank int // the rank that failed, or -1
}

type event struct {
	node int
	t    bootstrap.Type
	body []byte
	err  error // the link to the agent failed
}

// agentLink is mpirun's side of the link to one agent.
type agentLink struct {
	node  int
	host  string
	conn  *bootstrap.Conn // nil until a remote agent connects
	hello *bootstrap.AgentHello
	topo  *topology.Topology
	gone  bool
	done  chan struct{} // closed when an in-process agent returns

	// starter is the process that started a remote agent (its ssh, or
	// the srun step of all of them); parent, in a tree launch, the agent
	// that started this one.
	starter *starter
	parent  *agentLink
	claimed atomic.Bool
}

// starter is an ssh or srun process that started remote agents.
type starter struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stderr   *limitedBuffer
	exited   chan struct{} // closed when cmd has exited (or failed to start)
	startErr error
	waitErr  error
}

// claim marks the link as connected; a second connection for the same
// host is refused.
func (l *agentLink) claim() bool { return l.claimed.CompareAndSwap(false, true) }

// Run runs the job cfg describes and returns the status mpirun should
// exit with. An error means the job could not start; it is an *ExitError
// when it carries a status of its own.
func Run(cfg Config) (int, error) {
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	secret := make([]byte, 32)
	idb := make([]byte, 6)
	if _, err := rand.Read(secret); err != nil {
		return exitFailure, err
	}
	rand.Read(idb)
	j := &job{
		cfg: cfg, log: log, id: hex.EncodeToString(idb), secret: secret,
		out:      &printer{stdout: cfg.Stdout, stderr: cfg.Stderr, tag: cfg.TagOutput, timestamp: cfg.TimestampOutput},
		events:   make(chan event, 256),
		fenced:   map[int]bool{},
		noticed:  map[string]bool{},
		stdinAck: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	defer j.cleanup()
	prog, clean, err := resolveProgram(cfg.Program)
	if err != nil {
		return exitFailure, err
	}
	j.cleanups = append(j.cleanups, clean)
	j.prog = prog
	hosts, err := j.allocation()
	if err != nil {
		return 2, &ExitError{Code: 2, Err: err}
	}
	if cfg.DisplayAllocation || cfg.DoNotLaunch {
		j.displayAllocation(hosts)
	}
	if err := j.startAgents(hosts); err != nil {
		return exitFailure, err
	}
	if err := j.makePlan(hosts); err != nil {
		return exitFailure, &ExitError{Code: exitFailure, Err: err}
	}
	if cfg.DoNotLaunch {
		if !cfg.ReportBinding {
			for _, line := range j.plan.BindingReport() {
				j.out.notice("%s", line)
			}
		}
		j.out.notice("--do-not-launch: %d ranks planned on %d host(s); none started", len(j.plan.Ranks), len(j.plan.Hosts))
		return 0, nil
	}
	if cfg.OutputDir != "" {
		files, err := newRankFiles(cfg.OutputDir, len(j.plan.Ranks), cfg.MergeStderr)
		if err != nil {
			return exitFailure, &ExitError{Code: exitFailure, Err: err}
		}
		j.out.files, j.out.noCopy = files, cfg.OutputNoCopy
	}
	j.launch()
	return j.loop(), nil
}

// displayAllocation prints the hosts and slots the job may use, and where
// they came from (Open MPI's --display-allocation).
func (j *job) displayAllocation(hosts []HostSpec) {
	total := 0
	for _, h := range hosts {
		total += h.Slots
	}
	slots := fmt.Sprintf("%d slots", total)
	if total == 0 {
		slots = "one slot per core"
	}
	nh := fmt.Sprintf("%d hosts", len(hosts))
	if len(hosts) == 1 {
		nh = "1 host"
	}
	j.out.notice("allocation from %s: %s, %s", j.allocFrom, nh, slots)
	for _, h := range hosts {
		s := "slots=" + strconv.Itoa(h.Slots)
		if h.Slots == 0 {
			s = "slots=cores"
		}
		if h.MaxSlots > 0 {
			s += " max_slots=" + strconv.Itoa(h.MaxSlots)
		}
		j.out.notice("  %s %s", h.Name, s)
	}
}

// allocation returns the hosts the job may use.
func (j *job) allocation() ([]HostSpec, error) {
	hosts := j.cfg.Hosts
	if j.cfg.Hostfile != "" {
		f, err := os.Open(j.cfg.Hostfile)
		if err != nil {
			return nil, fmt.Errorf("hostfile: %w", err)
		}
		hf, err := ParseHostfile(j.cfg.Hostfile, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if len(hosts) > 0 {
			// -H with a hostfile selects hosts of the file, as Open MPI.
			var sel []HostSpec
			for _, h := range hosts {
				i := slices.IndexFunc(hf, func(x HostSpec) bool { return x.Name == h.Name })
				if i < 0 {
					return nil, fmt.Errorf("host %s given with -H is not in hostfile %s", h.Name, j.cfg.Hostfile)
				}
				sel = append(sel, hf[i])
			}
			hf = sel
		}
		hosts = hf
	}
	switch {
	case len(j.cfg.Hosts) > 0 && j.cfg.Hostfile != "":
		j.allocFrom = "hostfile " + j.cfg.Hostfile + ", hosts chosen with -H"
	case j.cfg.Hostfile != "":
		j.allocFrom = "hostfile " + j.cfg.Hostfile
	case len(hosts) > 0:
		j.allocFrom = "-H"
	}
	if len(hosts) == 0 && j.cfg.Launcher != "ssh" && inAllocation() {
		var err error
		if hosts, err = slurmAllocation(); err != nil {
			return nil, err
		}
		j.fromSlurm = true
		j.allocFrom = "Slurm job " + os.Getenv("SLURM_JOB_ID")
	}
	if len(hosts) == 0 && j.cfg.Launcher != "slurm" {
		sched, from, err := schedulerAllocation()
		if err != nil {
			return nil, err
		}
		hosts, j.allocFrom = sched, from
	}
	if len(hosts) == 0 {
		if j.cfg.Launcher == "slurm" {
			return nil, fmt.Errorf("--launcher slurm: not inside a Slurm allocation (no SLURM_JOB_ID and SLURM_JOB_NODELIST); use sbatch or salloc")
		}
		j.allocFrom = "this host (no -H, hostfile or batch job)"
		return []HostSpec{{Name: localName()}}, nil
	}
	// Names of this machine collapse into one local host.
	var out []HostSpec
	local := -1
	for _, h := range hosts {
		if isThisNode(h.Name) {
			if local >= 0 {
				out[local].Slots += h.Slots
				continue
			}
			local = len(out)
			if !j.fromSlurm {
				h.Name = localName()
			}
		}
		out = append(out, h)
	}
	return out, nil
}

func localName() string {
	h, _ := os.Hostname()
	if h == "" {
		return "localhost"
	}
	return h
}

func (j *job) defaultHosts() bool {
	return strings.HasPrefix(j.allocFrom, "this host")
}

// startAgents starts one agent per host and waits for their hellos.
func (j *job) startAgents(hosts []HostSpec) error {
	var remote []*agentLink
	byNode := map[int]*agentLink{}
	localAddr := "127.0.0.1"
	for i, h := range hosts {
		if isThisNode(h.Name) {
			continue
		}
		l := &agentLink{node: i, host: h.Name}
		remote = append(remote, l)
		byNode[i] = l
		if localAddr == "127.0.0.1" {
			// Ranks here must be reachable from the other hosts.
			a, err := routeTo(h.Name)
			if err != nil && j.launcherKind() != "slurm" {
				return &ExitError{Code: exitFailure, Err: err}
			}
			if err == nil {
				localAddr = a
			}
		}
	}
	for i, h := range hosts {
		if !isThisNode(h.Name) {
			j.agents = append(j.agents, byNode[i])
			continue
		}
		l, err := j.startLocalAgent(i, h.Name, localAddr)
		if err != nil {
			return err
		}
		j.agents = append(j.agents, l)
		go j.readAgent(l)
	}
	if len(remote) > 0 {
		al, err := j.listenForAgents()
		if err != nil {
			return err
		}
		go j.acceptAgents(al, byNode)
		if err := j.startRemoteAgents(remote, al); err != nil {
			return err
		}
	}
	deadline := time.After(agentStartTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for waiting := len(j.agents); waiting > 0; {
		select {
		case <-tick.C:
			// A starter that exited before its agent reported will never
			// report: fail now, with what it said.
			var dead []string
			for _, l := range remote {
				if l.hello == nil && l.starter != nil && isClosed(l.starter.exited) {
					dead = append(dead, l.whyNot())
				}
			}
			if len(dead) > 0 {
				return &ExitError{Code: exitFailure, Err: fmt.Errorf("agents failed to start:\n  %s", strings.Join(dead, "\n  "))}
			}
		case ev := <-j.events:
			l := j.agents[ev.node]
			if ev.err != nil {
				return &ExitError{Code: exitFailure, Err: fmt.Errorf("agent on %s failed to start: %v", l.host, ev.err)}
			}
			if ev.t != bootstrap.TAgentHello {
				continue
			}
			h, err := bootstrap.ParseAgentHello(ev.body)
			if err != nil {
				return fmt.Errorf("agent on %s: %w", l.host, err)
			}
			t, err := topology.Parse(h.Topology)
			if err != nil {
				return fmt.Errorf("agent on %s: %w", l.host, err)
			}
			l.hello, l.topo = h, t
			waiting--
		case <-deadline:
			var missing []string
			for _, l := range j.agents {
				if l.hello == nil {
					missing = append(missing, l.whyNot())
				}
			}
			return &ExitError{Code: exitFailure, Err: fmt.Errorf("agents did not start within %v:\n  %s", agentStartTimeout, strings.Join(missing, "\n  "))}
		}
	}
	return nil
}

// startRemoteAgents starts the agents of the remote hosts with the
// launcher the job uses.
func (j *job) startRemoteAgents(remote []*agentLink, al *agentListener) error {
	switch j.launcherKind() {
	case "slurm":
		return j.startSrunAgents(remote, al)
	default:
		return j.startSSHAgents(remote, al)
	}
}

// startLocalAgent runs the agent for this machine inside mpirun, over a
// socket pair: the same protocol a remote agent speaks.
func (j *job) startLocalAgent(node int, host, tcpAddr string) (*agentLink, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair for the local agent: %w", err)
	}
	ends := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "agent-link")
		ends[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("local agent link: %w", err)
		}
	}
	l := &agentLink{node: node, host: host, conn: bootstrap.NewConn(ends[0]), done: make(chan struct{})}
	l.claim()
	go func() {
		defer close(l.done)
		err := RunAgent(bootstrap.NewConn(ends[1]), AgentConfig{Node: node, Secret: j.secret, TCPAddr: tcpAddr,
			Logger: j.log.Named("agent"), MeasureMedium: j.cfg.MeasureMedium})
		if err != nil {
			j.log.Error("local agent", zap.Error(err))
		}
		ends[1].Close()
	}()
	return l, nil
}

// localTopology reads this machine's topology within mpirun's affinity.
func localTopology() (*topology.Topology, error) {
	cpus, err := linux.Affinity()
	if err != nil {
		cpus = nil
	}
	return topology.ReadLocal(cpus)
}

func (j *job) readAgent(l *agentLink) {
	for {
		t, body, err := l.conn.Recv()
		if err != nil {
			j.events <- event{node: l.node, err: err}
			return
		}
		if t == bootstrap.TOutput {
			if m, err := bootstrap.ParseOutput(body); err == nil {
				j.out.write(m.Rank, m.Stream, m.Data)
			}
			continue
		}
		j.events <- event{node: l.node, t: t, body: body}
	}
}

// makePlan maps the ranks now that the agents reported their hosts.
func (j *job) makePlan(hosts []HostSpec) error {
	mapBy, err := ParseMapBy(j.cfg.MapBy)
	if err != nil {
		return err
	}
	if n := j.cfg.CPUsPerRank; n > 0 {
		if mapBy.PE > 0 && mapBy.PE != n {
			return fmt.Errorf("--cpus-per-rank %d and --map-by %s disagree on the cores of a rank", n, j.cfg.MapBy)
		}
		mapBy.PE = n
	}
	if j.fromSlurm && j.cfg.MapBy == "" {
		// sbatch -c N: each task is N cpus, as srun would give it.
		mapBy.PE = slurmCPUsPerTask()
	}
	bindTo, err := ParseBindTo(j.cfg.BindTo)
	if err != nil {
		return err
	}
	req := planRequest{hosts: hosts, np: j.cfg.NP, npernode: j.cfg.NPerNode, mapBy: mapBy, bindTo: bindTo,
		oversubscribe: j.cfg.Oversubscribe, defaultHosts: j.defaultHosts()}
	for _, l := range j.agents {
		req.topos = append(req.topos, l.topo)
	}
	p, err := makePlan(req)
	if err != nil {
		return err
	}
	j.plan = p
	for _, w := range p.Warnings {
		j.out.notice("%s", w)
	}
	if j.cfg.ReportBinding {
		for _, line := range p.BindingReport() {
			j.out.notice("%s", line)
		}
	}
	j.ranks = make([]rankState, len(p.Ranks))
	for _, r := range p.Ranks {
		j.ranks[r.Rank].host = p.Hosts[r.Host].Name
	}
	j.alive = len(p.Ranks)
	return nil
}

// launch sends each agent its ranks.
func (j *job) launch() {
	j.started = time.Now()
	env := []string{
		bootstrap.EnvJob + "=" + j.id,
		bootstrap.EnvSize + "=" + strconv.Itoa(len(j.plan.Ranks)),
		bootstrap.EnvSecret + "=" + hex.EncodeToString(j.secret),
	}
	if j.cfg.Transport != "" {
		env = append(env, bootstrap.EnvTransport+"="+j.cfg.Transport)
	}
	if j.cfg.Verbose > 0 {
		env = append(env, bootstrap.EnvVerbose+"="+strconv.Itoa(j.cfg.Verbose))
	}
	if j.cfg.Iface != "" {
		env = append(env, bootstrap.EnvIface+"="+j.cfg.Iface)
	}
	if j.cfg.Compress {
		env = append(env, bootstrap.EnvCompress+"=1")
	}
	var exported []string // -x: last, so that they win over ours
	for _, x := range j.cfg.Env {
		if strings.Contains(x, "=") {
			exported = append(exported, x)
		} else if v, ok := os.LookupEnv(x); ok {
			exported = append(exported, x+"="+v)
		}
	}
	wdir := j.cfg.Wdir
	if wdir == "" {
		wdir, _ = os.Getwd()
	}
	for h, host := range j.plan.Hosts {
		l := j.agents[h]
		m := &bootstrap.Launch{JobID: j.id, Program: j.prog, Args: j.cfg.Args, Wdir: wdir,
			Size: len(j.plan.Ranks), Stdin: j.cfg.StdinRank == 0, Merge: j.cfg.MergeStderr}
		oversub := "0"
		m.Env = append([]string(nil), env...)
		if host.Oversubscribed {
			oversub = "1"
			// More ranks than cores: a rank's own threads only compete
			// with the other ranks (the Go scheduler's idle spinning took
			// 4-rank allreduce on 2 cores from 6.7 to 22 us). -x GOMAXPROCS
			// or an exported GOMAXPROCS wins.
			if os.Getenv("GOMAXPROCS") == "" {
				m.Env = append(m.Env, fmt.Sprintf("GOMAXPROCS=%d", max(1, len(host.Topology.CPUs)/len(host.Ranks))))
			}
		} else if pe := j.plan.PE; pe > 1 && os.Getenv("GOMAXPROCS") == "" {
			// --cpus-per-rank N: each rank's goroutines run on its N cores
			// (Go would size GOMAXPROCS from the binding anyway; the
			// variable says so to the program, and holds unbound).
			m.Env = append(m.Env, fmt.Sprintf("GOMAXPROCS=%d", pe))
		}
		m.Env = append(m.Env, bootstrap.EnvOversub+"="+oversub)
		m.Env = append(m.Env, exported...)
		for _, r := range host.Ranks {
			pr := j.plan.Ranks[r]
			spec := bootstrap.RankSpec{Rank: r, LocalRank: pr.LocalRank, Cpus: pr.Cpus, Env: []string{
				bootstrap.EnvRank + "=" + strconv.Itoa(r),
				bootstrap.EnvLocalRank + "=" + strconv.Itoa(pr.LocalRank),
				bootstrap.EnvCpuset + "=" + topology.FormatList(pr.Cpus),
			}}
			m.Ranks = append(m.Ranks, spec)
		}
		if l.conn == nil {
			continue
		}
		if err := l.conn.SendMsg(m); err != nil {
			go func() { j.events <- event{node: h, err: err} }()
		}
	}
	if j.cfg.StdinRank == 0 && len(j.plan.Ranks) > 0 {
		go j.forwardStdin(j.agents[j.plan.Ranks[0].Host])
	}
}

// forwardStdin sends mpirun's stdin to the agent of rank 0, a chunk at a
// time, each after the previous one was written.
func (j *job) forwardStdin(l *agentLink) {
	in := j.cfg.Stdin
	if in == nil {
		in = os.Stdin
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if l.conn.Send(bootstrap.TStdin, buf[:n]) != nil {
				return
			}
			select {
			case <-j.stdinAck:
			case <-j.done:
				return
			}
		}
		if err != nil {
			l.conn.Send(bootstrap.TStdin, nil)
			return
		}
	}
}

// loop runs the job to its end and returns mpirun's exit status.
func (j *job) loop() int {
	defer close(j.done)
	var timeout <-chan time.Time
	if j.cfg.Timeout > 0 {
		t := time.NewTimer(j.cfg.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	for j.alive > 0 {
		var killC, reportC, suspectC <-chan time.Time
		if j.killTimer != nil {
			killC = j.killTimer.C
		}
		if j.suspectT != nil {
			suspectC = j.suspectT.C
		}
		if j.hang != nil {
			reportC = j.hang.timer.C
		}
		select {
		case ev := <-j.events:
			j.handle(ev)
		case sig := <-j.cfg.Signals:
			j.onSignal(sig)
		case <-timeout:
			j.onTimeout()
		case <-reportC:
			j.stepHangReport()
		case <-killC:
			j.killTimer = nil
			j.signalAll(syscall.SIGKILL)
		case <-suspectC:
			j.commitSuspect()
		}
	}
	j.commitSuspect()
	if j.hang != nil {
		j.finishHangReport()
	}
	if j.failure != nil {
		return j.failure.code
	}
	return 0
}

func (j *job) handle(ev event) {
	l := j.agents[ev.node]
	if ev.err != nil {
		if l.gone {
			return
		}
		l.gone = true
		lost := 0
		for _, r := range j.plan.Hosts[l.node].Ranks {
			if !j.ranks[r].exited {
				j.ranks[r].exited = true
				j.alive--
				lost++
			}
		}
		if lost > 0 {
			j.fail(exitFailure, fmt.Sprintf("lost the node agent on %s (%v); its %d running ranks are gone", l.host, ev.err, lost))
		}
		return
	}
	switch ev.t {
	case bootstrap.TStarted:
		if m, err := bootstrap.ParseStarted(ev.body); err == nil && j.validRank(m.Rank) {
			j.ranks[m.Rank].pid = m.Pid
			j.out.openRank(m.Rank)
		}
	case bootstrap.TExited:
		m, err := bootstrap.ParseExited(ev.body)
		if err != nil || !j.validRank(m.Rank) || j.ranks[m.Rank].exited {
			return
		}
		j.onExit(m)
	case bootstrap.TFence:
		m, err := bootstrap.ParseFence(ev.body)
		if err != nil {
			j.fail(exitFailure, fmt.Sprintf("agent on %s sent a bad fence: %v", l.host, err))
			return
		}
		j.fencePairs = append(j.fencePairs, m.Pairs...)
		j.fenced[ev.node] = true
		j.checkFence()
	case bootstrap.TAbort:
		m, err := bootstrap.ParseAbort(ev.body)
		if err != nil || !j.validRank(m.Rank) {
			return
		}
		j.suspectRank(m.Rank, m.Code, fmt.Sprintf("%s called Abort(%d)", j.describeRank(m.Rank), m.Code))
	case bootstrap.TAgentError:
		text, err := bootstrap.ParseText(ev.body)
		if err == nil {
			j.fail(exitFailure, text)
		}
	case bootstrap.TNotice:
		// A line for the user from an agent or a rank, printed once per
		// job however many ranks say it.
		if text, err := bootstrap.ParseText(ev.body); err == nil && !j.noticed[text] {
			j.noticed[text] = true
			j.out.notice("%s", text)
		}
	case bootstrap.TReport:
		if m, err := bootstrap.ParseReport(ev.body); err == nil && j.validRank(m.Rank) {
			j.gotReport(m)
		}
	case bootstrap.TStdinAck:
		select {
		case j.stdinAck <- struct{}{}:
		default:
		}
	}
}

func (j *job) validRank(r int) bool { return r >= 0 && r < len(j.ranks) }

func (j *job) describeRank(r int) string {
	s := j.ranks[r]
	if s.pid > 0 {
		return fmt.Sprintf("rank %d (pid %d on %s)", r, s.pid, s.host)
	}
	return fmt.Sprintf("rank %d (on %s)", r, s.host)
}

func (j *job) onExit(m *bootstrap.Exited) {
	s := &j.ranks[m.Rank]
	s.exited = true
	if m.Pid > 0 {
		s.pid = m.Pid
	}
	s.initialized, s.finalized = m.Initialized, m.Finalized
	j.alive--
	if j.stopping {
		return
	}
	switch {
	case m.Err != "":
		j.failRank(m.Rank, m.Code, fmt.Sprintf("rank %d could not start on %s: %s", m.Rank, s.host, m.Err))
	case m.OOM != "":
		j.failRank(m.Rank, 128+m.Signal, fmt.Sprintf("%s was killed by the kernel's out-of-memory killer (%s)", j.describeRank(m.Rank), m.OOM))
	case m.Signal != 0:
		j.failRank(m.Rank, 128+m.Signal, fmt.Sprintf("%s was killed by signal %d (%v)", j.describeRank(m.Rank), m.Signal, syscall.Signal(m.Signal)))
	case m.Code != 0:
		j.suspectRank(m.Rank, m.Code, fmt.Sprintf("%s exited with status %d", j.describeRank(m.Rank), m.Code))
	case m.Initialized && !m.Finalized:
		j.suspectRank(m.Rank, exitFailure, fmt.Sprintf("%s exited with status 0 without calling comm.Finalize", j.describeRank(m.Rank)))
	}
}

// checkFence answers a fence once every agent with live ranks entered it.
func (j *job) checkFence() {
	for _, l := range j.agents {
		if len(j.plan.Hosts[l.node].Ranks) > 0 && !l.gone && !j.fenced[l.node] {
			return
		}
	}
	body := (&bootstrap.Fence{Pairs: j.fencePairs}).Append(nil)
	j.fencePairs = nil
	j.fenced = map[int]bool{}
	for _, l := range j.agents {
		if !l.gone && len(j.plan.Hosts[l.node].Ranks) > 0 {
			l.conn.Send(bootstrap.TFenceDone, body)
		}
	}
}

// consequenceWindow is how long a failure that may be a consequence waits
// for its cause: a rank whose peer was killed sees the link fail within
// microseconds and may exit or abort before the killed rank's death is
// reported (its agent reports deaths by signal at once).
const consequenceWindow = 300 * time.Millisecond

// suspectRank records a failure of rank that may be the consequence of
// another:
// a rank that exits with an error status or calls Abort, perhaps because a
// peer died. It becomes the job's failure unless a death by signal, or the
// loss of an agent, is reported within consequenceWindow: the death is
// the cause, and the job is stopped naming it.
func (j *job) suspectRank(rank, code int, msg string) {
	if j.failure != nil || j.suspect != nil {
		return
	}
	j.suspect = &failure{code: code, msg: msg, rank: rank}
	j.suspectT = time.NewTimer(consequenceWindow)
}

// commitSuspect makes the suspected failure the job's, if nothing else
// was found meanwhile.
func (j *job) commitSuspect() {
	if j.suspectT != nil {
		j.suspectT.Stop()
		j.suspectT = nil
	}
	if s := j.suspect; s != nil {
		j.suspect = nil
		j.failRank(s.rank, s.code, s.msg)
	}
}

// fail records the first failure and stops the job.
func (j *job) fail(code int, msg string) { j.failRank(-1, code, msg) }

// failRank records the first failure, that of rank (-1: of no rank still
// running, or of the job as a whole), and stops the job.
func (j *job) failRank(rank, code int, msg string) {
	if j.failure != nil {
		return
	}
	if j.suspectT != nil {
		j.suspectT.Stop()
		j.suspectT, j.suspect = nil, nil
	}
	if f := j.out.files; f != nil && j.validRank(rank) {
		msg += " (see " + f.path(rank, 2) + ")"
	}
	j.failure = &failure{code: code, msg: msg, rank: rank}
	// The ranks to stop: those started (mpirun knows their pid) that have
	// not exited, but the one that failed.
	running, other := 0, ""
	for r, s := range j.ranks {
		if s.pid > 0 && !s.exited && r != rank {
			running++
		}
	}
	if rank >= 0 {
		other = " other"
	}
	switch {
	case running == 0 && (rank < 0 || !j.validRank(rank) || j.ranks[rank].exited):
		j.out.notice("%s", msg)
	case running == 0:
		j.out.notice("%s; stopping it", msg)
	case running == 1:
		j.out.notice("%s; stopping the%s rank", msg, other)
	default:
		j.out.notice("%s; stopping the%s %d ranks", msg, other, running)
	}
	j.stop()
}

// stop asks every rank to terminate, and kills them after the grace period.
func (j *job) stop() {
	if j.stopping {
		return
	}
	j.stopping = true
	j.signalAll(syscall.SIGTERM)
	j.killTimer = time.NewTimer(j.cfg.KillGrace)
}

func (j *job) signalAll(sig syscall.Signal) {
	body := (&bootstrap.Signal{Signal: int(sig)}).Append(nil)
	for _, l := range j.agents {
		if !l.gone && l.conn != nil {
			l.conn.Send(bootstrap.TSignal, body)
		}
	}
}

func (j *job) onSignal(sig os.Signal) {
	s, _ := sig.(syscall.Signal)
	switch s {
	case syscall.SIGUSR1, syscall.SIGUSR2:
		j.signalAll(s)
		return
	}
	j.interrupts++
	if j.interrupts > 1 {
		j.out.notice("killing the job")
		j.signalAll(syscall.SIGKILL)
		return
	}
	if s == syscall.SIGINT && time.Since(j.started) >= interruptReportAfter && !j.stopping {
		// A job interrupted after running a while may be hung: say what
		// each rank was doing before stopping it.
		j.startHangReport(fmt.Sprintf("interrupted after %v", time.Since(j.started).Round(time.Second)),
			128+int(s), fmt.Sprintf("received %v", sig))
		return
	}
	j.fail(128+int(s), fmt.Sprintf("received %v", sig))
}

// onTimeout starts the hang report of --timeout.
func (j *job) onTimeout() {
	j.startHangReport(fmt.Sprintf("the job ran longer than --timeout %v", j.cfg.Timeout),
		ExitTimeout, fmt.Sprintf("job stopped after --timeout %v", j.cfg.Timeout))
}

// cleanup closes the agent links, waits for in-process agents and the
// starters of remote ones, and removes temporary files.
func (j *job) cleanup() {
	for _, l := range j.agents {
		if l.conn != nil {
			l.conn.Close()
		}
	}
	for _, l := range j.agents {
		if l.done != nil {
			<-l.done
		}
	}
	j.stopRemote()
	for _, c := range j.cleanups {
		c()
	}
	j.out.closeFiles() // after the agents: their last output is written
}
