//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/parley-hpc/parley/launcher"
	"github.com/parley-hpc/parley/transport/shm"
)

// version and commit are set at build time (make build, make install):
// -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "0.1.0-dev"
	commit  = ""
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are mpirun's flags.
type options struct {
	np            int
	hosts         []string
	hostfile      string
	npernode      int
	oversubscribe bool
	mapBy         string
	cpusPerRank   int
	bindTo        string
	reportBind    bool
	displayAlloc  bool
	doNotLaunch   bool
	tagOutput     bool
	timestamp     bool
	outputFile    string
	mergeStderr   bool
	env           []string
	wdir          string
	timeout       string
	verbose       int
	stdin         string
	transport     string
	iface         string
	compress      bool
	launcherKind  string
	launchAgent   string
	prefix        string
	ssh           string
	showVersion   bool
	info          bool
	json          bool
	help          bool
	agent         bool
	agentArgs     agentOptions
}

type agentOptions struct {
	node     int
	connect  string
	children string
	ssh      string
	nodes    string
}

func newFlagSet(o *options) *pflag.FlagSet {
	fs := pflag.NewFlagSet("mpirun", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SortFlags = false
	fs.IntVarP(&o.np, "np", "n", 0, "number of ranks (default: one per slot)")
	fs.StringSliceVarP(&o.hosts, "host", "H", nil, "hosts to run on, as host[:slots],... (repeatable)")
	fs.StringVar(&o.hostfile, "hostfile", "", "file of hosts: \"host slots=N\" (Open MPI) or \"host:N\" (Hydra) lines")
	fs.StringVar(&o.hostfile, "machinefile", "", "same as --hostfile")
	fs.IntVar(&o.npernode, "npernode", 0, "ranks per host")
	fs.IntVar(&o.npernode, "ppn", 0, "same as --npernode")
	fs.BoolVar(&o.oversubscribe, "oversubscribe", false, "allow more ranks than slots or cores")
	fs.StringVar(&o.mapBy, "map-by", "", "slot|node|core|hwthread|socket|numa|l3cache|ppr:N:OBJECT, with :pe=N for N cores per rank")
	fs.IntVar(&o.cpusPerRank, "cpus-per-rank", 0, "cores bound to each rank, which gets GOMAXPROCS=N (as --map-by slot:pe=N)")
	fs.IntVar(&o.cpusPerRank, "cpus-per-proc", 0, "same as --cpus-per-rank")
	fs.StringVar(&o.bindTo, "bind-to", "", "core|hwthread|socket|numa|l3cache|none (default: core when ranks <= cores, core round robin when they share the cores evenly, else none)")
	fs.BoolVar(&o.reportBind, "report-bindings", false, "print each rank's binding")
	fs.BoolVar(&o.displayAlloc, "display-allocation", false, "print the hosts and slots taken (from -H, a hostfile, or a Slurm, PBS, LSF or Grid Engine job)")
	fs.BoolVar(&o.doNotLaunch, "do-not-launch", false, "print the allocation and where each rank would run, and start nothing")
	fs.BoolVar(&o.tagOutput, "tag-output", false, "prefix each output line with [1,rank]<stdout|stderr>:")
	fs.BoolVar(&o.timestamp, "timestamp-output", false, "prefix each output line with the time")
	fs.StringVar(&o.outputFile, "output-filename", "", "also write each rank's output to DIR/1/rank.N/stdout and stderr (DIR:nocopy: only there)")
	fs.BoolVar(&o.mergeStderr, "merge-stderr-to-stdout", false, "send the ranks' stderr into their stdout")
	fs.StringArrayVarP(&o.env, "export", "x", nil, "export VAR (its value here) or VAR=value to the ranks (repeatable)")
	fs.StringVar(&o.wdir, "wdir", "", "working directory of the ranks (default: the current one)")
	fs.StringVar(&o.wdir, "wd", "", "same as --wdir")
	fs.StringVar(&o.timeout, "timeout", "", "end the job after this long (seconds, or a duration like 90s or 5m), printing what each rank was blocked in")
	fs.CountVarP(&o.verbose, "verbose", "v", "more messages from mpirun and the runtime (repeat for more)")
	fs.StringVar(&o.stdin, "stdin", "0", "rank that reads mpirun's standard input: 0 or none")
	fs.StringVar(&o.transport, "transport", "", "how ranks talk: auto (shared memory within hosts; between hosts RDMA verbs where built in and a port is active, else TCP), shm, tcp, or verbs (required between hosts)")
	fs.StringVar(&o.iface, "iface", "", "network interface name or CIDR for TCP between hosts")
	fs.BoolVar(&o.compress, "compress", false, "compress large TCP payloads (for slow links; skipped for incompressible data)")
	fs.StringVar(&o.launcherKind, "launcher", "", "how to start agents on other hosts: ssh or slurm (default: slurm inside an allocation, else ssh)")
	fs.StringVar(&o.launchAgent, "launch-agent", "", "path of mpirun on the remote hosts (default: this mpirun's path)")
	fs.StringVar(&o.prefix, "prefix", "", "install prefix on the remote hosts (PREFIX/bin/mpirun)")
	fs.StringVar(&o.ssh, "ssh", "", "ssh command and options for remote hosts (default: $PARLEY_SSH or ssh)")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&o.info, "info", false, "report this build, what this host offers (transports, launchers, limits, topology) and the binding -np N would get, and exit")
	fs.BoolVar(&o.json, "json", false, "with --info: the report as JSON")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help and exit")
	fs.BoolVar(&o.agent, "agent", false, "run as a node agent (started by mpirun itself)")
	fs.IntVar(&o.agentArgs.node, "agent-node", 0, "this agent's host index")
	fs.StringVar(&o.agentArgs.connect, "agent-connect", "", "address of mpirun, host:port")
	fs.StringVar(&o.agentArgs.children, "agent-children", "", "hosts this agent starts agents on: host=node,...")
	fs.StringVar(&o.agentArgs.ssh, "agent-ssh", "", "the ssh command for --agent-children")
	fs.StringVar(&o.agentArgs.nodes, "agent-nodes", "", "host=index of every host, for agents started by srun")
	for _, hidden := range []string{"agent", "agent-node", "agent-connect", "agent-children", "agent-ssh", "agent-nodes", "machinefile", "ppn", "wd", "cpus-per-proc"} {
		fs.MarkHidden(hidden)
	}
	return fs
}

const usageHead = `usage: mpirun [options] PROGRAM [ARGS...]

Starts the ranks of PROGRAM (an executable, or a Go package directory, which
is built first) and waits for them. Exits with the status of the first rank
that fails.

options:
`

func usage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprint(w, usageHead)
	fmt.Fprint(w, fs.FlagUsages())
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet(&o)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(normalizeArgs(fs, args)); err != nil {
		fmt.Fprintf(stderr, "mpirun: %v\n", err)
		usage(stderr, fs)
		return 2
	}
	switch {
	case o.help:
		usage(stdout, fs)
		return 0
	case o.showVersion:
		fmt.Fprintf(stdout, "mpirun (parley) %s\n", version)
		return 0
	case o.agent:
		return runAgent(o, stderr)
	case o.info:
		return runInfo(o, fs, stdout, stderr)
	case o.json:
		fmt.Fprintln(stderr, "mpirun: --json goes with --info")
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "mpirun: no program given")
		usage(stderr, fs)
		return 2
	}
	cfg, err := o.config(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "mpirun: %v\n", err)
		usage(stderr, fs)
		return 2
	}
	log := newLogger(o.verbose, stderr)
	defer log.Sync()
	cfg.Logger = log
	cfg.Stdout, cfg.Stderr = stdout, stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	cfg.Signals = sigs
	cfg.MeasureMedium = measureMedium
	code, err := launcher.Run(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mpirun: %v\n", err)
		var ee *launcher.ExitError
		if errors.As(err, &ee) {
			return ee.Code
		}
		return max(code, 1)
	}
	return code
}

func (o *options) config(argv []string) (launcher.Config, error) {
	cfg := launcher.Config{
		Program: argv[0], Args: argv[1:], NP: o.np, Hostfile: o.hostfile, NPerNode: o.npernode,
		Oversubscribe: o.oversubscribe, MapBy: o.mapBy, CPUsPerRank: o.cpusPerRank, BindTo: o.bindTo, ReportBinding: o.reportBind,
		DisplayAllocation: o.displayAlloc, DoNotLaunch: o.doNotLaunch,
		TagOutput: o.tagOutput, TimestampOutput: o.timestamp, Env: o.env, Wdir: o.wdir, Verbose: o.verbose,
		Transport: o.transport, Iface: o.iface, Compress: o.compress, Launcher: o.launcherKind, LaunchAgent: o.launchAgent, Prefix: o.prefix,
	}
	if o.np < 0 {
		return cfg, fmt.Errorf("-np %d: the number of ranks cannot be negative", o.np)
	}
	cfg.MergeStderr = o.mergeStderr
	if o.outputFile != "" {
		dir, mods, _ := strings.Cut(o.outputFile, ":")
		for _, m := range strings.Split(mods, ",") {
			switch m {
			case "":
			case "nocopy":
				cfg.OutputNoCopy = true
			default:
				return cfg, fmt.Errorf("--output-filename %s: unknown modifier %q (nocopy is the one there is)", o.outputFile, m)
			}
		}
		if dir == "" {
			return cfg, fmt.Errorf("--output-filename %s: no directory", o.outputFile)
		}
		cfg.OutputDir = dir
	}
	if o.cpusPerRank < 0 {
		return cfg, fmt.Errorf("--cpus-per-rank %d: cannot be negative", o.cpusPerRank)
	}
	if o.npernode < 0 {
		return cfg, fmt.Errorf("--npernode %d: cannot be negative", o.npernode)
	}
	hosts, err := launcher.ParseHostList(o.hosts)
	if err != nil {
		return cfg, fmt.Errorf("-H: %w", err)
	}
	cfg.Hosts = hosts
	if _, err := launcher.ParseMapBy(o.mapBy); err != nil {
		return cfg, err
	}
	if _, err := launcher.ParseBindTo(o.bindTo); err != nil {
		return cfg, err
	}
	if o.timeout != "" {
		d, err := parseTimeout(o.timeout)
		if err != nil {
			return cfg, err
		}
		cfg.Timeout = d
	}
	switch o.stdin {
	case "0":
		cfg.StdinRank = 0
	case "none":
		cfg.StdinRank = -1
	default:
		return cfg, fmt.Errorf("--stdin %q: must be 0 or none", o.stdin)
	}
	switch o.launcherKind {
	case "", "ssh", "slurm":
	default:
		return cfg, fmt.Errorf("--launcher %q: must be ssh or slurm", o.launcherKind)
	}
	switch o.transport {
	case "", "auto", "tcp", "shm", "verbs":
	default:
		return cfg, fmt.Errorf("--transport %q: must be auto, shm, tcp or verbs", o.transport)
	}
	for _, x := range o.env {
		name, _, _ := strings.Cut(x, "=")
		if name == "" {
			return cfg, fmt.Errorf("-x %q: no variable name", x)
		}
	}
	if o.ssh != "" {
		cfg.SSH = strings.Fields(o.ssh)
	} else if v := os.Getenv("PARLEY_SSH"); v != "" {
		cfg.SSH = strings.Fields(v)
	}
	return cfg, nil
}

// maxTimeout is the longest --timeout: a year is longer than any job, and
// far below where a time.Duration (nanoseconds in an int64) overflows.
const maxTimeout = 366 * 24 * time.Hour

// parseTimeout accepts whole seconds ("30", as Open MPI's --timeout) or a
// Go duration ("90s", "90m", "1h30m"), positive and at most a year.
func parseTimeout(s string) (time.Duration, error) {
	bad := fmt.Errorf("--timeout %q: expected seconds or a duration such as 90s or 90m", s)
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > int64(maxTimeout/time.Second) {
			return 0, fmt.Errorf("--timeout %s: seconds must be between 1 and %d (a year)", s, int64(maxTimeout/time.Second))
		}
		d = time.Duration(n) * time.Second
	} else if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("--timeout %s: more than a year", s)
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad
		}
	}
	switch {
	case d <= 0:
		return 0, fmt.Errorf("--timeout %s: must be positive", s)
	case d > maxTimeout:
		return 0, fmt.Errorf("--timeout %s: more than a year", s)
	}
	return d, nil
}

// normalizeArgs rewrites Open MPI's single-dash long options (-np 4,
// -host a,b, -bind-to core) to the double-dash form pflag parses, up to
// the program name.
func normalizeArgs(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			return append(out, args[i:]...)
		}
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		if !strings.HasPrefix(a, "--") && len(name) > 1 && fs.Lookup(name) != nil {
			a = "-" + a
		}
		out = append(out, a)
		var f *pflag.Flag
		if strings.HasPrefix(a, "--") {
			f = fs.Lookup(name)
		} else if len(name) >= 1 {
			f = fs.ShorthandLookup(name[:1])
			if len(name) > 1 {
				hasValue = true // -n4, -x=FOO
			}
		}
		if f != nil && f.NoOptDefVal == "" && !hasValue && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// newLogger makes mpirun's logger: warnings and errors by default, more
// with each -v.
func newLogger(verbose int, w io.Writer) *zap.Logger {
	level := zapcore.WarnLevel
	switch {
	case verbose == 1:
		level = zapcore.InfoLevel
	case verbose >= 2:
		level = zapcore.DebugLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	enc.CallerKey = ""
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)
	return zap.New(core).Named("mpirun")
}

// runAgent is the hidden agent mode, started on remote hosts.
func runAgent(o options, stderr io.Writer) int {
	log := newLogger(o.verbose, stderr)
	cfg := launcher.AgentMainConfig{Node: o.agentArgs.node, Connect: o.agentArgs.connect, Logger: log, Verbose: o.verbose,
		MeasureMedium: measureMedium}
	if o.agentArgs.children != "" {
		children, err := launcher.ParseChildren(o.agentArgs.children)
		if err != nil {
			fmt.Fprintf(stderr, "mpirun agent: %v\n", err)
			return 2
		}
		cfg.Children = children
		cfg.SSH = strings.Fields(o.agentArgs.ssh)
	}
	if o.agentArgs.nodes != "" {
		nodes, err := launcher.ParseChildren(o.agentArgs.nodes)
		if err != nil {
			fmt.Fprintf(stderr, "mpirun agent: %v\n", err)
			return 2
		}
		cfg.NodeMap = nodes
	}
	if err := launcher.AgentMain(cfg); err != nil {
		fmt.Fprintf(stderr, "mpirun agent: %v\n", err)
		return 1
	}
	return 0
}

// runInfo prints mpirun --info: the report, as text or JSON.
func runInfo(o options, fs *pflag.FlagSet, stdout, stderr io.Writer) int {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mpirun: --info takes no program (%s)\n", fs.Arg(0))
		return 2
	}
	cfg, err := o.config([]string{""})
	if err != nil {
		fmt.Fprintf(stderr, "mpirun: %v\n", err)
		return 2
	}
	cfg.MeasureMedium = measureMedium
	in := launcher.GatherInfo(version, commit, cfg)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(in); err != nil {
			fmt.Fprintf(stderr, "mpirun: %v\n", err)
			return 1
		}
		return 0
	}
	in.WriteText(stdout)
	return 0
}

// measureMedium is the node agents' launcher.MediumProbe: the
// shared-memory transport's own measure (shm.MeasureMedium).
func measureMedium(from, to int) (bool, string, error) {
	m, err := shm.MeasureMedium(from, to)
	if err != nil {
		return false, "", err
	}
	return m.ReadWins(), m.String(), nil
}
