package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/parley-hpc/parley/internal/proctest"
)

// The launchers other than parley's mpirun that start parley programs:
// MPICH's mpiexec.hydra (PMI-2 or PMI-1 on PMI_FD, PMI-1 on PMI_PORT),
// Open MPI's mpirun and srun --mpi=pmix (PMIx, in a -tags pmix build),
// srun --mpi=pmi2 (slurm_test.go); the ones parley cannot join are
// refused with one line; and the allocations of PBS, LSF and Grid Engine.

func needTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		proctest.Unavailable(t, "%s not found (apt-get install %s)", tool, pkg)
	}
	return p
}

// run runs a command with extra environment and returns its output and
// exit status.
func run(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), code
}

var ompiEnv = []string{"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMPI_MCA_btl_vader_single_copy_mechanism=none"}

// checkRing wants the ring's checksum, and the transports the ranks chose
// (PARLEY_VERBOSE=1): shared memory within a host, TCP across; and no
// rank that saw a peer's link close under it.
func checkRing(t *testing.T, out string, code int, wantTCP bool) {
	t.Helper()
	if code != 0 || !strings.Contains(out, "checksum ok") || strings.Contains(out, "lost a peer") || !strings.Contains(out, `"via": "shm"`) || strings.Contains(out, `"via": "tcp"`) != wantTCP {
		t.Fatalf("exit status %d (want shm within hosts, tcp across: %v):\n%s", code, wantTCP, out)
	}
}

func TestHydra(t *testing.T) {
	hydra := needTool(t, "mpiexec.hydra", "mpich")
	ring := filepath.Join(bin, "ring")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"PMI-2 on PMI_FD", []string{"-n", "4", "-genv", "PARLEY_VERBOSE", "1"}},
		{"PMI-1 on PMI_FD", []string{"-n", "4", "-genv", "PARLEY_VERBOSE", "1", "-genv", "PARLEY_PMI", "1"}},
		{"PMI-1 on PMI_PORT", []string{"-pmi-port", "-n", "3", "-genv", "PARLEY_VERBOSE", "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, code := run(t, nil, hydra, append(c.args, ring, "-laps", "5", "-size", "100000")...)
			checkRing(t, out, code, false)
		})
	}
	t.Run("across hosts", func(t *testing.T) {
		needHosts(t)
		out, code := run(t, nil, hydra, "-launcher", "ssh", "-iface", "hx-br0", "-hosts", "host1:2,host2:2", "-n", "4",
			"-genv", "PARLEY_VERBOSE", "1", ring, "-laps", "5", "-size", "100000")
		checkRing(t, out, code, true)
		checkNoneLeft(t)
		// PARLEY_IFACE chooses the network, as mpirun's --iface.
		out, code = run(t, nil, hydra, "-launcher", "ssh", "-iface", "hx-br0", "-hosts", "host1:1,host2:1", "-n", "2",
			"-genv", "PARLEY_IFACE", "nosuch0", ring)
		if code == 0 || !strings.Contains(out, "nosuch0") {
			t.Fatalf("PARLEY_IFACE=nosuch0: exit status %d:\n%s", code, out)
		}
		checkNoneLeft(t)
	})
}

// TestForeignLaunchers: a launcher parley cannot talk to makes every rank
// fail at Init with one line naming it and what works, where each used
// to run the whole job as a world of one; started alone, the program
// still runs as a world of one.
func TestForeignLaunchers(t *testing.T) {
	testprog := filepath.Join(bin, "testprog")
	t.Run("Open MPI", func(t *testing.T) {
		ompi := needTool(t, "mpirun.openmpi", "openmpi-bin")
		out, code := run(t, ompiEnv, ompi, "-np", "2", testprog, "hello")
		if code == 0 || strings.Count(out, "started by Open MPI's mpirun as one of 2 processes") != 2 || strings.Contains(out, "rank 0 of 1") {
			t.Fatalf("exit status %d:\n%s", code, out)
		}
		out, code = run(t, ompiEnv, ompi, "-np", "1", testprog, "hello")
		if code != 0 || !strings.Contains(out, "rank 0 of 1") {
			t.Fatalf("-np 1: exit status %d:\n%s", code, out)
		}
	})
	for _, c := range []struct{ mpi, want string }{
		{"none", "started by srun as one of 2 tasks without a process manager interface parley speaks (--mpi=none): use srun --mpi=pmi2"},
		{"pmix", "started by srun --mpi=pmix as one of 2 tasks, which parley cannot join: this build has no PMIx client: build the program with -tags pmix"},
	} {
		t.Run("srun --mpi="+c.mpi, func(t *testing.T) {
			needSlurm(t)
			out, code := run(t, nil, "srun", "--mpi="+c.mpi, "-N1", "-n2", testprog, "hello")
			if code == 0 || strings.Count(out, c.want) != 2 || strings.Contains(out, "rank 0 of 1") {
				t.Fatalf("exit status %d, want 2 x %q:\n%s", code, c.want, out)
			}
		})
	}
}

var (
	pmixOnce sync.Once
	pmixBin  string
	pmixWhy  string
)

// pmixRing builds the ring example with -tags pmix (cgo, libpmix).
func pmixRing(t *testing.T) string {
	t.Helper()
	pmixOnce.Do(func() {
		if err := exec.Command("pkg-config", "--exists", "pmix").Run(); err != nil {
			pmixWhy = "libpmix not found by pkg-config (apt-get install libpmix-dev)"
			return
		}
		pmixBin = filepath.Join(bin, "ring-pmix")
		cmd := exec.Command("go", "build", "-tags", "pmix", "-o", pmixBin, "../../examples/ring")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			pmixWhy = fmt.Sprintf("go build -tags pmix: %v\n%s", err, out)
		}
	})
	if pmixWhy != "" {
		if strings.HasPrefix(pmixWhy, "go build") {
			t.Fatal(pmixWhy)
		}
		proctest.Unavailable(t, "%s", pmixWhy)
	}
	return pmixBin
}

// TestPMIx: a program built with -tags pmix starts under Open MPI's
// mpirun and under srun --mpi=pmix, with shared memory within hosts.
func TestPMIx(t *testing.T) {
	ring := pmixRing(t)
	t.Run("Open MPI's mpirun", func(t *testing.T) {
		ompi := needTool(t, "mpirun.openmpi", "openmpi-bin")
		out, code := run(t, ompiEnv, ompi, "-np", "2", "-x", "PARLEY_VERBOSE=1", ring, "-laps", "5", "-size", "100000")
		checkRing(t, out, code, false)
	})
	t.Run("srun --mpi=pmix", func(t *testing.T) {
		needSlurm(t)
		out, code := run(t, []string{"PARLEY_VERBOSE=1"}, "srun", "--mpi=pmix", "-N2", "-n4", ring, "-laps", "5", "-size", "100000")
		checkRing(t, out, code, true)
		checkNoneLeft(t)
	})
}

// TestSchedulerAllocations: inside a PBS, LSF or Grid Engine job, mpirun
// takes the job's hosts and slots from the files and variables those
// schedulers set, and starts its agents over ssh.
func TestSchedulerAllocations(t *testing.T) {
	needHosts(t)
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	for _, c := range []struct {
		name string
		env  []string
		from string
	}{
		{"PBS", []string{"PBS_JOBID=17.pbs", "PBS_NODEFILE=" + write("pbs", "host1\nhost1\nhost2\nhost2\n")}, "PBS job 17.pbs"},
		{"LSF hostfile", []string{"LSB_JOBID=18", "LSB_DJOB_HOSTFILE=" + write("lsf", "host1\nhost1\nhost2\nhost2\n")}, "LSF job 18 (LSB_DJOB_HOSTFILE"},
		{"LSF MCPU", []string{"LSB_JOBID=19", "LSB_MCPU_HOSTS=host1 2 host2 2"}, "LSF job 19 (LSB_MCPU_HOSTS)"},
		{"Grid Engine", []string{"JOB_ID=20", "PE_HOSTFILE=" + write("sge", "host1 2 all.q@host1 UNDEFINED\nhost2 2 all.q@host2 UNDEFINED\n")}, "Grid Engine job 20"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, code := run(t, c.env, filepath.Join(bin, "mpirun"), "--display-allocation", filepath.Join(bin, "testprog"), "hello")
			if code != 0 || !strings.Contains(out, "allocation from "+c.from) || !strings.Contains(out, "2 hosts, 4 slots") ||
				strings.Count(out, " of 4 on host1") != 2 || strings.Count(out, " of 4 on host2") != 2 {
				t.Fatalf("exit status %d:\n%s", code, out)
			}
			checkNoneLeft(t)
		})
	}
	t.Run("a bad PE_HOSTFILE", func(t *testing.T) {
		out, code := run(t, []string{"JOB_ID=21", "PE_HOSTFILE=" + write("bad", "host1 many\n")}, filepath.Join(bin, "mpirun"), filepath.Join(bin, "testprog"), "hello")
		if code != 2 || !strings.Contains(out, `PE_HOSTFILE `+dir+`/bad:1: "many" slots`) {
			t.Fatalf("exit status %d:\n%s", code, out)
		}
	})
}

// TestDoNotLaunch: --do-not-launch starts the agents, plans the ranks,
// prints where each would run, and starts none.
func TestDoNotLaunch(t *testing.T) {
	needHosts(t)
	r := mpirun(t, "--do-not-launch", "-H", "host1:2,host2:1", filepath.Join(bin, "testprog"), "hello")
	if r.code != 0 || strings.Contains(r.stdout, "rank ") || !strings.Contains(r.stderr, "allocation from -H: 2 hosts, 3 slots") ||
		!strings.Contains(r.stderr, "[host2] rank 2 bound to cpus 0") || !strings.Contains(r.stderr, "3 ranks planned on 2 host(s); none started") {
		t.Fatalf("exit status %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
