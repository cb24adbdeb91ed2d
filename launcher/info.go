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
	"runtime/debug"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/parley-hpc/parley/internal/jobfiles"
	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/internal/topology"
)

// Info is what `mpirun --info` reports: what this build is, what it can
// use on this host, and where a job's ranks would run. Every field is
// found out on the spot (files read, probes made), nothing is assumed.
type Info struct {
	Version    string   `json:"version"`
	Commit     string   `json:"commit,omitempty"`
	CommitTime string   `json:"commit_time,omitempty"`
	Modified   bool     `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go         string   `json:"go"`
	Platform   string   `json:"platform"` // GOOS/GOARCH
	Cgo        bool     `json:"cgo"`
	Race       bool     `json:"race,omitempty"`
	Tags       []string `json:"tags"`

	Host       string `json:"host"`
	Kernel     string `json:"kernel"`
	Topology   string `json:"topology"`
	MemTotal   uint64 `json:"mem_total_bytes"`
	MemLimit   int64  `json:"mem_cgroup_limit_bytes"` // -1: none
	TaskLimit  string `json:"task_limit,omitempty"`   // the tightest limit on processes and threads
	TasksAvail int64  `json:"tasks_available,omitempty"`

	Transports  []Capability `json:"transports"`
	Launchers   []Capability `json:"launchers"`
	Environment []string     `json:"environment"` // launcher and scheduler variables seen (families)

	Ranks    int      `json:"ranks"`   // the -np the binding is for
	Binding  []string `json:"binding"` // one line per rank, as --report-bindings
	Warnings []string `json:"binding_warnings,omitempty"`
	BindErr  string   `json:"binding_error,omitempty"`
}

// Capability is one transport or launcher: whether this build has it,
// whether it is usable here, and the detail that says why.
type Capability struct {
	Name    string `json:"name"`
	InBuild bool   `json:"in_build"`
	Usable  bool   `json:"usable"`
	Detail  string `json:"detail"`
}

// GatherInfo collects the report for mpirun's version and commit (set at
// build time; the commit Go recorded from git, where it did, wins), and
// the binding cfg's rank count and mapping flags would get on this host.
func GatherInfo(version, commit string, cfg Config) *Info {
	in := &Info{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Tags: []string{}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.time":
				in.CommitTime = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			case "CGO_ENABLED":
				in.Cgo = s.Value == "1"
			case "-race":
				in.Race = s.Value == "true"
			case "-tags":
				in.Tags = strings.Split(s.Value, ",")
			}
		}
	}
	in.Host = localName()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		in.Kernel = unix.ByteSliceToString(uts.Sysname[:]) + " " + unix.ByteSliceToString(uts.Release[:])
	}
	topo, err := localTopology()
	if err == nil {
		in.Topology = topo.Summary()
	} else {
		in.Topology = "unknown: " + err.Error()
	}
	in.MemTotal = memTotal()
	in.MemLimit = memCgroupLimit()
	if ls := taskLimits(); len(ls) > 0 {
		tight := slices.MinFunc(ls, func(a, b limit) int { return int(a.avail - b.avail) })
		in.TaskLimit, in.TasksAvail = tight.what, tight.avail
	}
	in.Transports = transportInfo(topo, err)
	for i, c := range in.Transports {
		if c.Name == "cma" && c.Usable && cfg.MeasureMedium != nil {
			in.Transports[i].Detail += mediumInfo(cfg.MeasureMedium)
		}
	}
	in.Launchers = launcherInfo()
	in.Environment = launcherEnvironment()
	in.Ranks, in.Binding, in.Warnings, in.BindErr = localBinding(cfg)
	return in
}

// mediumInfo measures, as node agents do before their ranks start, how
// messages above the shared-memory eager limit move faster between two
// of this process's cpus.
func mediumInfo(probe MediumProbe) string {
	cpus, err := linux.Affinity()
	if err != nil {
		return fmt.Sprintf("; medium messages not measured (%v): chains", err)
	}
	if len(cpus) < 2 {
		return "; medium messages not measured (one cpu): chains"
	}
	read, detail, err := probe(cpus[0], cpus[1])
	switch {
	case err != nil:
		return fmt.Sprintf("; medium messages not measured (%v): chains", err)
	case read:
		return fmt.Sprintf("; messages above the shared-memory eager limit: single copy (%s, cpus %d and %d)", detail, cpus[0], cpus[1])
	}
	return fmt.Sprintf("; messages above the shared-memory eager limit up to the chain limit: chains (%s, cpus %d and %d)", detail, cpus[0], cpus[1])
}

func memTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb uint64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

// memCgroupLimit is the tightest memory limit on this process's cgroups.
func memCgroupLimit() int64 {
	var t oomTracker
	var limit int64 = -1
	for _, cg := range t.cgroupsOf(os.Getpid()) {
		if l, ok := readMemLimit(cg.limit); ok && (limit < 0 || l < limit) {
			limit = l
		}
	}
	return limit
}

func transportInfo(topo *topology.Topology, err error) []Capability {
	shm := Capability{Name: "shm", InBuild: true}
	dir := jobfiles.DefaultDir
	size := jobfiles.SegmentSize(2)
	if free, err := jobfiles.Probe(dir, size); err != nil {
		shm.Detail = fmt.Sprintf("%s: %v; ranks of a host fall back to TCP", dir, err)
	} else {
		shm.Usable = true
		n := 2
		if err == nil {
			n = max(2, topo.NumCores())
		}
		need := uint64(n) * uint64(jobfiles.SegmentSize(n))
		shm.Detail = fmt.Sprintf("%s: %s free; %d ranks here (one per core) need %s", dir, jobfiles.Human(free), n, jobfiles.Human(need))
	}
	if os.Getenv("PARLEY_SHM") == "off" {
		shm.Usable = false
		shm.Detail += "; PARLEY_SHM=off in this environment turns it off"
	}
	// Cross-memory attach: large on-node messages copied once, straight
	// from the sender's memory.
	cma := Capability{Name: "cma", InBuild: true}
	if err := linux.ProbeReadRemote(); err != nil {
		cma.Detail = fmt.Sprintf("refused here: %v; large on-node messages take two copies", err)
	} else if scope, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		s := strings.TrimSpace(string(scope))
		cma.Usable = s == "0" || s == "1"
		cma.Detail = "process_vm_readv under Yama ptrace_scope " + s
		if s == "1" {
			cma.Detail += " (each rank allows its peers with PR_SET_PTRACER)"
		} else if !cma.Usable {
			cma.Detail += ": only CAP_SYS_PTRACE may read another process; large on-node messages take two copies"
		}
	} else {
		cma.Usable = true
		cma.Detail = "process_vm_readv permitted (no Yama module): large on-node messages are copied once"
	}
	tcp := Capability{Name: "tcp", InBuild: true}
	var addrs []string
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		as, _ := ifc.Addrs()
		for _, a := range as {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				addrs = append(addrs, ifc.Name+" "+ipn.String())
			}
		}
	}
	tcp.Usable = len(addrs) > 0
	tcp.Detail = "interfaces: " + strings.Join(addrs, ", ")
	if len(addrs) == 0 {
		tcp.Detail = "no interface with an IPv4 address is up"
	}
	// Verbs lives in the program, not in mpirun: a program built with
	// -tags verbs uses it between hosts where a port is active.
	verbs := Capability{Name: "verbs", InBuild: false, Detail: "in programs built with -tags verbs (cgo, libibverbs)"}
	if devs, _ := filepath.Glob("/sys/class/infiniband/*"); len(devs) > 0 {
		var names []string
		for _, d := range devs {
			names = append(names, filepath.Base(d))
		}
		verbs.Usable = true
		verbs.Detail += "; RDMA devices here: " + strings.Join(names, ", ")
	} else {
		verbs.Detail += "; no RDMA devices here (/sys/class/infiniband is empty)"
	}
	return []Capability{shm, cma, tcp, verbs}
}

func launcherInfo() []Capability {
	local := Capability{Name: "local", InBuild: true, Usable: true, Detail: "ranks on this host, one agent inside mpirun"}
	ssh := Capability{Name: "ssh", InBuild: true}
	cmd := "ssh"
	if v := os.Getenv("PARLEY_SSH"); v != "" {
		cmd = strings.Fields(v)[0]
	}
	if p, err := exec.LookPath(cmd); err == nil {
		ssh.Usable, ssh.Detail = true, "agents on other hosts started with "+p
	} else {
		ssh.Detail = cmd + " not found in PATH"
	}
	slurm := Capability{Name: "slurm", InBuild: true}
	if p, err := exec.LookPath("srun"); err != nil {
		slurm.Detail = "srun not found in PATH"
	} else if inAllocation() {
		slurm.Usable = true
		slurm.Detail = fmt.Sprintf("inside job %s: nodes %s, tasks per node %s; agents start as one srun step (%s)",
			os.Getenv("SLURM_JOB_ID"), os.Getenv("SLURM_JOB_NODELIST"), os.Getenv("SLURM_TASKS_PER_NODE"), p)
	} else {
		slurm.Usable = true
		slurm.Detail = p + "; not inside an allocation now"
	}
	pmi2 := Capability{Name: "pmi2", InBuild: true, Usable: true, Detail: "programs start without mpirun under srun --mpi=pmi2"}
	if os.Getenv("PMI_FD") != "" && os.Getenv("PMI_RANK") != "" {
		pmi2.Detail += "; this process runs under a PMI server now (PMI_FD set)"
	}
	return []Capability{local, ssh, slurm, pmi2}
}

// launcherFamilies are the environment variables launchers and
// schedulers set, by family.
var launcherFamilies = []struct{ prefix, who string }{
	{"SLURM_", "Slurm"}, {"OMPI_", "Open MPI"}, {"PMIX_", "PMIx"}, {"PMI_", "PMI"}, {"HYDRA_", "Hydra"},
	{"PBS_", "PBS/Torque"}, {"LSB_", "LSF"}, {"SGE_", "Grid Engine"}, {"PE_HOSTFILE", "Grid Engine"}, {"FLUX_", "Flux"},
	{"PARLEY_", "parley"},
}

func launcherEnvironment() []string {
	count := map[string]int{}
	for _, kv := range os.Environ() {
		for _, f := range launcherFamilies {
			if strings.HasPrefix(kv, f.prefix) {
				count[f.prefix]++
				break
			}
		}
	}
	out := []string{}
	for _, f := range launcherFamilies {
		if n := count[f.prefix]; n > 0 {
			out = append(out, fmt.Sprintf("%s* (%s): %d variables", f.prefix, f.who, n))
		}
	}
	return out
}

// localBinding plans cfg's ranks on this host alone, as mpirun would
// without -H, and returns the --report-bindings lines.
func localBinding(cfg Config) (int, []string, []string, string) {
	topo, err := localTopology()
	if err != nil {
		return 0, nil, nil, err.Error()
	}
	j := &job{cfg: cfg, allocFrom: "this host"}
	hosts := []HostSpec{{Name: localName()}} // as allocation() without -H
	j.agents = []*agentLink{{host: hosts[0].Name, topo: topo}}
	j.out = &printer{stdout: discard{}, stderr: discard{}}
	if err := j.makePlan(hosts); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			err = ee.Err
		}
		return cfg.NP, nil, nil, err.Error()
	}
	return len(j.plan.Ranks), j.plan.BindingReport(), j.plan.Warnings, ""
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// WriteText prints the report for people, one topic a line.
func (in *Info) WriteText(w io.Writer) {
	build := in.Version
	if in.Commit != "" {
		build += ", commit " + in.Commit
		if in.Modified {
			build += " (modified)"
		}
		if in.CommitTime != "" {
			build += " of " + in.CommitTime
		}
	}
	tags := "none"
	if len(in.Tags) > 0 {
		tags = strings.Join(in.Tags, ",")
	}
	cgo := "off"
	if in.Cgo {
		cgo = "on"
	}
	fmt.Fprintf(w, "parley %s\n", build)
	fmt.Fprintf(w, "  built with     %s %s, cgo %s, build tags: %s", in.Go, in.Platform, cgo, tags)
	if in.Race {
		fmt.Fprint(w, ", race detector")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  host           %s, %s\n", in.Host, in.Kernel)
	fmt.Fprintf(w, "  topology       %s\n", in.Topology)
	mem := jobfiles.Human(in.MemTotal)
	if in.MemLimit >= 0 {
		mem += ", memory cgroup limit " + formatBytes(in.MemLimit)
	} else {
		mem += ", no memory cgroup limit"
	}
	fmt.Fprintf(w, "  memory         %s\n", mem)
	if in.TaskLimit != "" {
		fmt.Fprintf(w, "  task limit     %d more processes or threads (%s)\n", in.TasksAvail, in.TaskLimit)
	}
	section := func(title string, cs []Capability) {
		fmt.Fprintf(w, "%s:\n", title)
		for _, c := range cs {
			state := "usable"
			switch {
			case !c.InBuild:
				state = "absent"
			case !c.Usable:
				state = "unusable"
			}
			fmt.Fprintf(w, "  %-14s %-8s %s\n", c.Name, state, c.Detail)
		}
	}
	section("transports", in.Transports)
	section("launchers", in.Launchers)
	env := "none of Slurm, Open MPI, PMI(x), Hydra, PBS, LSF, Grid Engine, Flux"
	if len(in.Environment) > 0 {
		env = strings.Join(in.Environment, "; ")
	}
	fmt.Fprintf(w, "launcher environment: %s\n", env)
	if in.BindErr != "" {
		fmt.Fprintf(w, "binding: %s\n", in.BindErr)
		return
	}
	fmt.Fprintf(w, "binding of %d ranks here (-np, --map-by, --bind-to, --cpus-per-rank change it):\n", in.Ranks)
	for _, l := range in.Binding {
		fmt.Fprintf(w, "  %s\n", l)
	}
	for _, l := range in.Warnings {
		fmt.Fprintf(w, "  (%s)\n", l)
	}
}
