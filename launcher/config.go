//go:build linux

package launcher

import (
	"io"
	"os"
	"time"

	"go.uber.org/zap"
)

// Config is a job as mpirun's flags describe it.
type Config struct {
	Program string   // executable path or name, or a Go package directory
	Args    []string // the program's arguments

	NP            int        // ranks; 0: one per slot (or as ppr/-npernode say)
	Hosts         []HostSpec // -H; empty with no Hostfile: the local host
	Hostfile      string
	NPerNode      int
	Oversubscribe bool
	MapBy         string // --map-by
	CPUsPerRank   int    // --cpus-per-rank: cores bound to each rank (the pe=N of --map-by)
	BindTo        string // --bind-to
	ReportBinding bool
	// DisplayAllocation prints the hosts and slots taken; DoNotLaunch
	// also plans the ranks, prints where they would run and stops there.
	DisplayAllocation, DoNotLaunch bool

	TagOutput       bool
	TimestampOutput bool
	OutputDir       string   // --output-filename: each rank's output in DIR/1/rank.N/{stdout,stderr}
	OutputNoCopy    bool     // with OutputDir: not also on mpirun's stdout and stderr (":nocopy")
	MergeStderr     bool     // --merge-stderr-to-stdout
	Env             []string // -x: "VAR" (export its value) or "VAR=value"
	Wdir            string
	Timeout         time.Duration // end the job after this long, with a hang report
	Transport       string        // "", "tcp", "shm": force a transport between ranks
	Verbose         int
	StdinRank       int // the rank that reads mpirun's stdin; -1: none

	// Launcher chooses how remote agents start: "ssh", "slurm", or "" to
	// decide from the environment.
	Launcher    string
	LaunchAgent string   // the mpirun that runs an agent on remote hosts
	Prefix      string   // install prefix on remote hosts: PREFIX/bin/mpirun
	SSH         []string // ssh command and options
	Iface       string   // --iface: interface name or CIDR for TCP
	Compress    bool     // --compress: compress large TCP payloads

	KillGrace time.Duration // between SIGTERM and SIGKILL when a job is stopped (default 1 s)

	Stdin          io.Reader // nil: os.Stdin
	Stdout, Stderr io.Writer // nil: os.Stdout, os.Stderr
	Signals        <-chan os.Signal
	Logger         *zap.Logger
	// MeasureMedium is passed on to the agent of the local host, and to
	// remote agents through their own mpirun (AgentMainConfig).
	MeasureMedium MediumProbe
}
