package comm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/transport"
	"github.com/parley-hpc/parley/transport/verbs"
)

// Options start a world without the PARLEY_ environment: for tests that
// run several ranks in one process, and for programs that bring their own
// key-value store. Init builds Options from the environment.
type Options struct {
	Rank, Size int
	// LocalRank and LocalSize place the rank among the ranks of its host
	// (LocalSize 0: unknown, which rules shared memory out).
	LocalRank, LocalSize int
	JobID                string
	Secret               []byte
	// KV is where ranks publish their cards (required when Size > 1).
	KV KeyValueStore
	// Node identifies the host: ranks with equal Node use shared memory
	// (default: the host name).
	Node string
	// Transport chooses how ranks talk: "" or "auto" (shared memory
	// within a host; between hosts RDMA verbs where this binary has it and
	// both ends have an active port, else TCP), "shm" (shared memory
	// within hosts required), "tcp" (TCP between all ranks, as ForceTCP),
	// or "verbs" (verbs between hosts required: Start fails, naming what
	// is missing, where it cannot have them).
	Transport string
	// ForceTCP makes every pair of ranks use TCP, even on one host.
	ForceTCP bool
	// NoShm disables shared memory.
	NoShm bool
	// VerbsDevice is the RDMA adapter to use instead of the one libibverbs
	// finds (PARLEY_VERBS_DEVICE names that one): tests give a fake
	// adapter of verbs.NewFabric.
	VerbsDevice verbs.Device
	// ShmSegment is this rank's segment, created and reserved by its node
	// agent for every rank of the host (all or none): then no rank of the
	// host can lack shared memory, and TCP is needed only for other hosts.
	// Without it, each rank creates its own segment, and keeps a TCP
	// listener too, for local peers whose segment could not be made.
	ShmSegment string
	// TCPListen is the address to listen on (default: all interfaces,
	// any port); TCPAdvertise the host peers dial (default: chosen by route).
	TCPListen, TCPAdvertise string
	// Oversubscribed makes waiting ranks give their CPU away sooner.
	Oversubscribed bool
	// ShmReadFirst makes messages between the shared-memory eager limit
	// and its chain limit move by single copy, not as chains through the
	// ring, where the kernel allows it (PARLEY_SHM_MEDIUM=read: the node
	// agent measured the single copy faster on this host).
	ShmReadFirst bool
	// Compress large TCP payloads (for slow links).
	Compress bool
	// Iface is the interface name or CIDR whose address TCP uses.
	Iface  string
	Logger *zap.Logger

	agent *agentKV  // set by Init under mpirun
	pmi   pmiClient // set by Init when a process manager started the rank
	// looseFence: KV's Fence is no barrier (tests of Finalize).
	looseFence bool
}

var (
	worldMu sync.Mutex
	world   *Comm
)

// Init starts the runtime from the PARLEY_ environment that mpirun gives
// each rank (or from Slurm's PMI-2 under srun --mpi=pmi2) and returns the
// world communicator. Run without either, the program is a world of one.
// Calling Init again returns the same world.
func Init() (*Comm, error) {
	worldMu.Lock()
	defer worldMu.Unlock()
	if world != nil {
		if world.e.finalized() {
			return nil, fmt.Errorf("parley init: %w: Init after Finalize (MPI allows one of each per process)", ErrFinalized)
		}
		return world, nil
	}
	opts, err := optionsFromEnv()
	if err != nil {
		return nil, fmt.Errorf("parley init: %w", err)
	}
	w, err := Start(opts)
	if err != nil {
		if opts.agent != nil {
			opts.agent.Close()
		}
		// The process manager's connection stays open until the process
		// exits: Hydra kills the whole job (SIGKILL) the moment a rank
		// closes it without finalizing, which lost the error the program
		// was about to print.
		return nil, fmt.Errorf("parley init: %w", err)
	}
	world = w
	return w, nil
}

// World returns the world communicator after Init, or nil.
func World() *Comm {
	worldMu.Lock()
	defer worldMu.Unlock()
	return world
}

// Finalize shuts the runtime started by Init down: it waits until every
// rank has called Finalize, then closes the transports. Requests must be
// complete. Finalize without Init, or twice, does nothing.
func Finalize() error {
	worldMu.Lock()
	w := world
	worldMu.Unlock()
	if w == nil {
		return nil
	}
	return w.e.finalize()
}

// Finalize shuts down the world that c belongs to (see the package-level
// Finalize); for worlds made with Start.
func (c *Comm) Finalize() error {
	if err := c.usable("finalize"); err != nil && !errors.Is(err, ErrFinalized) && !errors.Is(err, ErrFreed) {
		return err
	}
	return c.e.finalize()
}

func optionsFromEnv() (Options, error) {
	var o Options
	if os.Getenv(bootstrap.EnvRank) == "" {
		if directLaunch() {
			return optionsFromPMI()
		}
		if why := foreignLauncher(); why != "" {
			return o, errors.New(why)
		}
		o.Size = 1
		o.LocalSize = 1
		o.JobID = fmt.Sprintf("single-%d", os.Getpid())
		return o, nil
	}
	var err error
	get := func(name string) int {
		if err != nil {
			return 0
		}
		var v int
		v, err = envInt(name)
		return v
	}
	o.Rank, o.Size = get(bootstrap.EnvRank), get(bootstrap.EnvSize)
	o.LocalRank, o.LocalSize = get(bootstrap.EnvLocalRank), get(bootstrap.EnvLocalSize)
	if err != nil {
		return o, err
	}
	o.JobID = os.Getenv(bootstrap.EnvJob)
	o.Node = os.Getenv(bootstrap.EnvNode)
	o.Secret, err = decodeSecret(os.Getenv(bootstrap.EnvSecret))
	if err != nil {
		return o, err
	}
	if err := transportOptionsFromEnv(&o); err != nil {
		return o, err
	}
	o.Logger = loggerFromEnv(o.Rank)
	agent, err := dialAgent(os.Getenv(bootstrap.EnvAgent), o.Secret, o.Rank, 30*time.Second)
	if err != nil {
		return o, err
	}
	o.agent = agent
	return o, nil
}

// transportOptionsFromEnv reads how the rank's agent (or -x) says ranks
// should talk.
func transportOptionsFromEnv(o *Options) error {
	o.Transport = os.Getenv(bootstrap.EnvTransport)
	o.NoShm = os.Getenv(bootstrap.EnvShm) == "off"
	o.ShmSegment = os.Getenv(bootstrap.EnvShmSeg)
	o.Oversubscribed = os.Getenv(bootstrap.EnvOversub) == "1"
	switch m := os.Getenv(bootstrap.EnvShmMedium); m {
	case "read":
		o.ShmReadFirst = true
	case "chain", "":
	default:
		return fmt.Errorf("%s=%q: want read (messages above the shared-memory eager limit move by single copy) or chain (through the ring)",
			bootstrap.EnvShmMedium, m)
	}
	o.TCPAdvertise = os.Getenv(bootstrap.EnvTCPAddr)
	o.Compress = os.Getenv(bootstrap.EnvCompress) == "1"
	o.Iface = os.Getenv(bootstrap.EnvIface)
	return nil
}

// loggerFromEnv makes the runtime's logger: silent unless PARLEY_VERBOSE
// asks for more (mpirun -v sets it).
func loggerFromEnv(rank int) *zap.Logger {
	v, _ := strconv.Atoi(os.Getenv(bootstrap.EnvVerbose))
	if v <= 0 {
		return zap.NewNop()
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.DisableStacktrace = true
	cfg.DisableCaller = true
	cfg.EncoderConfig.TimeKey = ""
	if v == 1 {
		cfg.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	}
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l.With(zap.Int("rank", rank))
}

// Start starts a world from opts and returns its world communicator.
func Start(opts Options) (*Comm, error) {
	if opts.Size < 1 || opts.Rank < 0 || opts.Rank >= opts.Size {
		return nil, fmt.Errorf("%w: rank %d of a world of %d", ErrInvalidArg, opts.Rank, opts.Size)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	host, _ := os.Hostname()
	if opts.Node == "" {
		opts.Node = host
	}
	e := &engine{
		rank: opts.Rank, size: opts.Size, node: opts.Node, jobID: opts.JobID, secret: opts.Secret,
		log: log, queues: make(map[uint32]*matchQueue), routes: make([]route, opts.Size),
		cookies: make(map[uint64]*Request), ctxClaimed: map[uint32]bool{worldCtx: true},
	}
	e.setWaitPolicy(opts.Oversubscribed)
	e.noRemoteRead = debugInt("no_cma") == 1
	e.bell = transport.NewBell(&e.bellWord)
	switch {
	case opts.agent != nil:
		e.kv = opts.agent
	case opts.pmi != nil:
		_, pmi2 := opts.pmi.(pmi2Client)
		e.kv = &pmiKV{c: opts.pmi, syncs: !pmi2}
	case opts.KV != nil:
		e.kv = plainKV{KeyValueStore: opts.KV, loose: opts.looseFence}
	case opts.Size == 1:
		e.kv = plainKV{KeyValueStore: &memKV{}}
	default:
		return nil, fmt.Errorf("%w: a world of %d ranks needs a key-value store", ErrInvalidArg, opts.Size)
	}
	if a := opts.agent; a != nil {
		a.onLost = e.cancel
		a.describe = e.report
		a.start()
	}
	card := &bootstrap.Card{Rank: opts.Rank, Node: opts.Node, Hostname: host, Pid: os.Getpid()}
	if opts.Size > 1 {
		if err := e.startTransports(&opts, card); err != nil {
			e.closeTransports()
			return nil, err
		}
		if err := e.kv.Put(bootstrap.CardKey(opts.Rank), card.Append(nil)); err != nil {
			e.closeTransports()
			return nil, fmt.Errorf("publish card: %w", err)
		}
		if err := e.kv.Fence(); err != nil {
			e.closeTransports()
			return nil, fmt.Errorf("exchange cards: %w", err)
		}
	}
	e.startProgress(opts.LocalSize)
	e.world = newComm(e, worldCtx, opts.Rank, nil, "world")
	return e.world, nil
}

// setWaitPolicy chooses how long a waiting rank spins and yields before it
// sleeps. With a core of its own, spinning costs nothing and answers
// fastest; oversubscribed, a spinning rank steals the CPU from the rank it
// waits for, so it yields to other processes from the start.
func (e *engine) setWaitPolicy(oversubscribed bool) {
	e.politely = oversubscribed
	if oversubscribed {
		e.spinFor, e.yieldFor = 0, 50*time.Millisecond
	} else {
		e.spinFor, e.yieldFor = 200*time.Microsecond, 2*time.Millisecond
	}
	if runtime.GOMAXPROCS(0) == 1 && !oversubscribed {
		// One CPU for all goroutines of this rank: give other goroutines
		// a turn while waiting.
		e.spinFor = 20 * time.Microsecond
	}
	// PARLEY_DEBUG=spin_us=N,yield_us=N override the policy, for
	// measuring it.
	if v := debugInt("spin_us"); v > 0 {
		e.spinFor = time.Duration(v) * time.Microsecond
	}
	if v := debugInt("yield_us"); v > 0 {
		e.yieldFor = time.Duration(v) * time.Microsecond
	}
}

// listenHost picks the address to bind: the advertised one when it is a
// literal address (so that --iface keeps traffic on that interface), else
// all interfaces.
func listenHost(advertise string) string {
	if net.ParseIP(advertise) == nil {
		return ""
	}
	return advertise
}

// defaultAdvertise picks the host peers dial when nothing says better: the
// loopback address, right for ranks of one host. Under mpirun, agents set
// PARLEY_TCP_ADDR to the address that reached mpirun.
func defaultAdvertise() string { return "127.0.0.1" }

func (e *engine) closeTransports() error {
	var errs []error
	e.mu.Lock()
	e.stopFlush = true
	e.unlock()
	e.flushWG.Wait()
	e.mu.Lock()
	if e.bellInSegment {
		// The bell lives in the segment about to be unmapped.
		e.bell = transport.NewBell(&e.bellWord)
	}
	for _, t := range e.transports {
		errs = append(errs, t.Close())
	}
	e.unlock()
	return errors.Join(errs...)
}

func (e *engine) finalized() bool { return e.fin.Load() }

func (e *engine) finalize() error {
	e.finMu.Lock()
	defer e.finMu.Unlock()
	if e.fin.Load() {
		return nil
	}
	e.stopProgress()
	// Push out frames still queued (acknowledgements a peer waits for).
	deadline := time.Now().Add(10 * time.Second)
	for e.pendingSends() && time.Now().Before(deadline) {
		e.progressOnce()
	}
	e.mu.Lock()
	e.finalizing = true
	leftover := e.leftoverCollectiveLocked()
	e.unlock()
	var errs []error
	if leftover != nil {
		errs = append(errs, leftover)
	}
	if e.size > 1 {
		// No rank closes its links before every rank has reached
		// Finalize. Where the process manager's fence is no barrier
		// (Hydra's PMI-2 kvs-fence answers a rank before the others
		// arrive), a barrier over the world's own links follows it.
		if err := e.kv.Fence(); err != nil {
			errs = append(errs, fmt.Errorf("finalize: %w", err))
		} else if !e.kv.FenceSyncs() {
			if _, err := e.world.exchange("finalize", nil, inFinalize); err != nil {
				errs = append(errs, fmt.Errorf("finalize: %w", err))
			}
		}
	}
	e.fin.Store(true)
	errs = append(errs, e.closeTransports())
	errs = append(errs, e.kv.Finalized())
	errs = append(errs, e.kv.Close())
	return errors.Join(errs...)
}

func (e *engine) pendingSends() bool {
	e.mu.Lock()
	defer e.unlock()
	return e.pendingLocked()
}

// Abort ends the whole job: mpirun stops every rank and exits with code.
// Abort does not return.
func (c *Comm) Abort(code int) {
	if c == nil {
		// A nil communicator has no runtime to tell: the world's does.
		if w := World(); w != nil {
			w.Abort(code)
		}
		fmt.Fprintf(os.Stderr, "parley: Abort(%d)\n", code)
		os.Exit(code)
	}
	msg := fmt.Sprintf("rank %d of %s called Abort(%d)", c.rank, c.name(), code)
	if err := c.e.kv.Abort(code, msg); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", msg)
	}
	os.Exit(code)
}

// JobID returns the job's id.
func (c *Comm) JobID() string {
	if c == nil {
		return ""
	}
	return c.e.jobID
}

// Hostname returns the name of the host this rank runs on.
func Hostname() string {
	h, _ := os.Hostname()
	return h
}

// Cpuset returns the cpus mpirun bound this rank to, or nil when unbound.
func Cpuset() []int {
	return parseCPUList(os.Getenv(bootstrap.EnvCpuset))
}

func parseCPUList(s string) []int {
	var cpus []int
	for len(s) > 0 {
		var part string
		if i := indexByte(s, ','); i >= 0 {
			part, s = s[:i], s[i+1:]
		} else {
			part, s = s, ""
		}
		lo, hi := part, part
		if i := indexByte(part, '-'); i >= 0 {
			lo, hi = part[:i], part[i+1:]
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || b < a {
			return nil
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// debugInt reads a test-only knob from PARLEY_DEBUG ("name=value,...");
// 0 when absent.
func debugInt(name string) int {
	for _, kv := range strings.Split(os.Getenv(bootstrap.EnvDebugOpts), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}
