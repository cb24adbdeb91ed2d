//go:build linux

package launcher

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/hostlist"
)

// Inside a Slurm allocation (sbatch, salloc), mpirun takes its hosts and
// slots from the job's environment, and starts the agents of the other
// nodes as one srun step, with one task per node, as Open MPI and Hydra
// start their daemons: Slurm then accounts for every process and cleans
// them up with the job.

// inAllocation reports whether mpirun runs inside a Slurm job.
func inAllocation() bool {
	return os.Getenv("SLURM_JOB_ID") != "" && os.Getenv("SLURM_JOB_NODELIST") != ""
}

// launcherKind decides how remote agents start: as asked, else with srun
// inside a Slurm allocation, else over ssh.
func (j *job) launcherKind() string {
	if j.cfg.Launcher != "" {
		return j.cfg.Launcher
	}
	if inAllocation() {
		return "slurm"
	}
	return "ssh"
}

// slurmAllocation reads the hosts and slots of the job: one slot per task
// Slurm allocated on each node.
func slurmAllocation() ([]HostSpec, error) {
	list := os.Getenv("SLURM_JOB_NODELIST")
	names, err := hostlist.Expand(list)
	if err != nil {
		return nil, fmt.Errorf("SLURM_JOB_NODELIST: %w", err)
	}
	spec := os.Getenv("SLURM_TASKS_PER_NODE")
	if spec == "" {
		spec = os.Getenv("SLURM_JOB_CPUS_PER_NODE")
	}
	counts, err := hostlist.ExpandCounts(spec)
	if err != nil {
		return nil, fmt.Errorf("SLURM_TASKS_PER_NODE: %w", err)
	}
	if len(counts) != len(names) {
		return nil, fmt.Errorf("Slurm allocation: %d nodes (%s) but %d task counts (%s)", len(names), list, len(counts), spec)
	}
	hosts := make([]HostSpec, len(names))
	for i, n := range names {
		hosts[i] = HostSpec{Name: n, Slots: counts[i]}
	}
	return hosts, nil
}

// slurmCPUsPerTask is SLURM_CPUS_PER_TASK (srun -c / sbatch -c), or 0.
func slurmCPUsPerTask() int {
	n, err := strconv.Atoi(os.Getenv("SLURM_CPUS_PER_TASK"))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// isThisNode reports whether a Slurm node name is the node mpirun runs on.
func isThisNode(name string) bool {
	if n := os.Getenv("SLURMD_NODENAME"); n != "" && inAllocation() {
		return n == name
	}
	return IsLocalHost(name)
}

// startSrunAgents starts the agents of the remote nodes as one srun step.
// The secret travels in the step's environment (PARLEY_AGENT_SECRET):
// srun gives each task the environment of srun, which only this user can
// read. Each agent finds its host's index by its Slurm node name.
func (j *job) startSrunAgents(remote []*agentLink, al *agentListener) error {
	if !inAllocation() {
		return &ExitError{Code: exitFailure, Err: fmt.Errorf("--launcher slurm: not inside a Slurm allocation (no SLURM_JOB_ID and SLURM_JOB_NODELIST); use sbatch or salloc, or the ssh launcher")}
	}
	srun, err := exec.LookPath("srun")
	if err != nil {
		return &ExitError{Code: exitFailure, Err: fmt.Errorf("the slurm launcher needs srun in PATH: %w", err)}
	}
	agentPath, err := j.remoteAgentPath()
	if err != nil {
		return err
	}
	var nodes, nodeMap []string
	for _, l := range remote {
		nodes = append(nodes, l.host)
		nodeMap = append(nodeMap, fmt.Sprintf("%s=%d", l.host, l.node))
	}
	argv := []string{srun, "--ntasks-per-node=1", "--nodes=" + strconv.Itoa(len(remote)), "--ntasks=" + strconv.Itoa(len(remote)),
		"--nodelist=" + strings.Join(nodes, ","), "--kill-on-bad-exit", "--mpi=none", "--cpu-bind=none", "--export=ALL",
		"--overlap", "--quiet",
		agentPath, "--agent", "--agent-node=-1", "--agent-nodes", strings.Join(nodeMap, ","),
		"--agent-connect", al.connectList(remote[0].host)}
	if j.cfg.Verbose > 0 {
		argv = append(argv, "-"+strings.Repeat("v", j.cfg.Verbose))
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), EnvAgentSecret+"="+hex.EncodeToString(j.secret))
	stderr := &limitedBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	j.log.Debug("starting agents with srun", zap.Strings("argv", argv))
	if err := cmd.Start(); err != nil {
		return &ExitError{Code: exitFailure, Err: fmt.Errorf("srun: %w", err)}
	}
	st := &starter{cmd: cmd, stdin: stdin, stderr: stderr, exited: exited}
	go func() {
		st.waitErr = cmd.Wait()
		close(exited)
	}()
	for _, l := range remote {
		l.starter = st
	}
	j.starters = append(j.starters, st)
	return nil
}
