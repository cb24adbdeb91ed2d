package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-hpc/parley/internal/proctest"
)

// The Slurm tests start a real 3-node cluster (slurm-up.sh: munge,
// slurmctld, one slurmd per emulated node) the first time one of them
// runs, and stop it when the tests end.

var (
	slurmDir   = "/run/parley-slurm-test"
	slurmUp    bool
	slurmWhy   string
	slurmTried bool
)

func needSlurm(t *testing.T) {
	t.Helper()
	if !slurmTried {
		slurmTried = true
		slurmWhy = startSlurm()
	}
	if slurmWhy != "" {
		proctest.Unavailable(t, "%s", slurmWhy)
	}
}

func startSlurm() string {
	if os.Geteuid() != 0 {
		return "the Slurm tests need root (they start munged, slurmctld and slurmd)"
	}
	for _, tool := range []string{"slurmctld", "slurmd", "munged", "sbatch", "srun"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s not found (apt-get install slurm-wlm munge)", tool)
		}
	}
	cmd := exec.Command("bash", "slurm-up.sh", "--nodes", "3", "--dir", slurmDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("slurm-up.sh failed: %v\n%s", err, out)
	}
	os.Setenv("SLURM_CONF", filepath.Join(slurmDir, "etc/slurm.conf"))
	slurmUp = true
	return ""
}

func stopSlurm() {
	if slurmUp {
		exec.Command("bash", "slurm-down.sh", "--dir", slurmDir).Run()
	}
}

// sbatch submits a script and waits for the job to end; it returns the
// job's output and its exit code as "N:signal".
func sbatch(t *testing.T, args []string, script string) (string, string) {
	t.Helper()
	return waitJob(t, submit(t, args, script))
}

type batchJob struct{ id, out string }

func submit(t *testing.T, args []string, script string) batchJob {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "job.sh")
	out := filepath.Join(dir, "job.out")
	os.WriteFile(path, []byte("#!/bin/bash\n"+script+"\n"), 0o755)
	full := append([]string{"--parsable", "-o", out, "-D", dir}, args...)
	id, err := exec.Command("sbatch", append(full, path)...).Output()
	if err != nil {
		t.Fatalf("sbatch: %v", err)
	}
	return batchJob{strings.TrimSpace(string(id)), out}
}

// waitJob waits for a job to end and returns its output and exit code.
func waitJob(t *testing.T, j batchJob) (string, string) {
	t.Helper()
	job, out := j.id, j.out
	var state, exit string
	re := regexp.MustCompile(`JobState=(\S+).*ExitCode=(\S+)`)
	if !proctest.Eventually(60*time.Second, func() bool {
		b, _ := exec.Command("scontrol", "-o", "show", "job", job).Output()
		m := re.FindStringSubmatch(string(b))
		if m == nil {
			return false
		}
		state, exit = m[1], m[2]
		return state != "PENDING" && state != "RUNNING" && state != "CONFIGURING" && state != "COMPLETING"
	}) {
		exec.Command("scancel", job).Run()
		t.Fatalf("job %s did not end (state %s)", job, state)
	}
	b, _ := os.ReadFile(out)
	return string(b), exit
}

func TestSbatchMpirun(t *testing.T) {
	needSlurm(t)
	out, exit := sbatch(t, []string{"-N3", "-n6"}, fmt.Sprintf("%s/mpirun -v %s/ring -laps 5 -size 200000", bin, bin))
	if exit != "0:0" || !strings.Contains(out, "ring: 5 laps of 6 ranks") {
		t.Fatalf("exit %s:\n%s", exit, out)
	}
	for _, want := range []string{`"rank": 0, "peer": 1, "via": "shm"`, `"rank": 1, "peer": 2, "via": "tcp", "addr": "198.18.0.12:`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in:\n%s", want, out)
		}
	}
	checkNoneLeft(t)
}

func TestSbatchPlacement(t *testing.T) {
	needSlurm(t)
	// Without -np: one rank per allocated task; ranks fill node1 first.
	out, exit := sbatch(t, []string{"-N2", "-n3"}, fmt.Sprintf("%s/mpirun %s/testprog hello", bin, bin))
	if exit != "0:0" {
		t.Fatalf("exit %s:\n%s", exit, out)
	}
	for _, want := range []string{"rank 0 of 3 on node1", "rank 1 of 3 on node1", "rank 2 of 3 on node2"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	// More ranks than tasks: refused with the reason.
	out, exit = sbatch(t, []string{"-N2", "-n3"}, fmt.Sprintf("%s/mpirun -np 5 %s/testprog hello", bin, bin))
	if exit == "0:0" || !strings.Contains(out, "asked for 5 ranks, but the hosts offer 3 slots") {
		t.Fatalf("exit %s:\n%s", exit, out)
	}
}

// TestSbatchRankFails: a rank on the second node fails; the job's exit
// code is the rank's status, the summary line names it and, with
// --output-filename, the file holding what it wrote, which mpirun wrote
// on the first node from the output the agent forwarded.
func TestSbatchRankFails(t *testing.T) {
	needSlurm(t)
	script := fmt.Sprintf(`%s/mpirun --output-filename out sh -c 'if [ "$PARLEY_RANK" = 3 ]; then echo "rank 3 gives up" >&2; exit 3; fi; exec %s/testprog block'`, bin, bin)
	j := submit(t, []string{"-N2", "-n4"}, script)
	out, exit := waitJob(t, j)
	if !strings.HasPrefix(exit, "3:") || !strings.Contains(out, "on node2) exited with status 3 (see out/1/rank.3/stderr)") {
		t.Fatalf("exit %s:\n%s", exit, out)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(j.out), "out/1/rank.3/stderr"))
	if err != nil || string(b) != "rank 3 gives up\n" {
		t.Errorf("out/1/rank.3/stderr: %q %v", b, err)
	}
	checkNoneLeft(t)
}

func TestSrunPMI2(t *testing.T) {
	needSlurm(t)
	out, err := exec.Command("srun", "--mpi=pmi2", "-N2", "-n4", filepath.Join(bin, "ring"), "-laps", "4", "-size", "100000").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ring: 4 laps of 4 ranks") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = exec.Command("srun", "--mpi=pmi2", "-N3", "-n3", filepath.Join(bin, "testprog"), "hello").CombinedOutput()
	if err != nil || strings.Count(string(out), " of 3 on node") != 3 {
		t.Fatalf("%v\n%s", err, out)
	}
	checkNoneLeft(t)
}

func TestSalloc(t *testing.T) {
	needSlurm(t)
	out, err := exec.Command("salloc", "-N2", "-n4", filepath.Join(bin, "mpirun"), filepath.Join(bin, "testprog"), "hello").CombinedOutput()
	if err != nil || strings.Count(string(out), " of 4 on node") != 4 {
		t.Fatalf("%v\n%s", err, out)
	}
	checkNoneLeft(t)
}

func TestScancel(t *testing.T) {
	needSlurm(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	path := filepath.Join(dir, "job.sh")
	os.WriteFile(path, []byte(fmt.Sprintf("#!/bin/bash\n%s/mpirun -x TESTPROG_DIR=%s %s/testprog block\n", bin, dir, bin)), 0o755)
	id, err := exec.Command("sbatch", "--parsable", "-N2", "-n4", "-o", filepath.Join(dir, "out"), path).Output()
	if err != nil {
		t.Fatal(err)
	}
	job := strings.TrimSpace(string(id))
	if !proctest.Eventually(30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "rank[0-9]"))
		return len(m) == 4
	}) {
		exec.Command("scancel", job).Run()
		b, _ := os.ReadFile(filepath.Join(dir, "out"))
		t.Fatalf("ranks did not start:\n%s", b)
	}
	exec.Command("scancel", job).Run()
	checkNoneLeft(t)
}

func TestLauncherSlurmOutside(t *testing.T) {
	cmd := exec.Command(filepath.Join(bin, "mpirun"), "--launcher", "slurm", filepath.Join(bin, "hello"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not inside a Slurm allocation") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestSlurmStartupTime compares mpirun's start-up with Open MPI's in the
// same kind of allocation (a report, not a limit).
func TestSlurmStartupTime(t *testing.T) {
	needSlurm(t)
	ompi, err := exec.LookPath("mpirun.openmpi")
	if err != nil {
		proctest.Unavailable(t, "no mpirun.openmpi: apt-get install openmpi-bin")
	}
	script := fmt.Sprintf(`for i in 1 2 3; do
  s=$(date +%%s%%N); %s/mpirun %s/hello >/dev/null; e=$(date +%%s%%N); echo "parley hello $(( (e - s) / 1000000 )) ms"
  s=$(date +%%s%%N); %s --allow-run-as-root --bind-to none hostname >/dev/null; e=$(date +%%s%%N); echo "openmpi hostname $(( (e - s) / 1000000 )) ms"
done`, bin, bin, ompi)
	out, exit := sbatch(t, []string{"-N3", "-n6"}, script)
	t.Logf("start-up in a 3-node, 6-task allocation, exit %s:\n%s", exit, out)
}

// TestSlurmAgentLost: a node's agent dies mid-job (as when the node
// fails); mpirun names the node and nothing is left anywhere.
func TestSlurmAgentLost(t *testing.T) {
	needSlurm(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	script := fmt.Sprintf(`%s/mpirun -x TESTPROG_DIR=%s %s/testprog block`, bin, dir, bin)
	j := submit(t, []string{"-N2", "-n4"}, script)
	if !proctest.Eventually(30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "rank[0-9]"))
		return len(m) == 4
	}) {
		t.Fatal("ranks did not start")
	}
	for _, p := range jobProcesses() {
		if strings.Contains(p, "--agent") {
			pid := strings.Fields(p)[0]
			exec.Command("kill", "-9", pid).Run()
		}
	}
	out, exit := waitJob(t, j)
	if exit == "0:0" || !strings.Contains(out, "lost the node agent on node2") {
		t.Fatalf("exit %s:\n%s", exit, out)
	}
	checkNoneLeft(t)
}

// TestSrunMissing: mpirun inside an allocation without srun says so.
func TestSrunMissing(t *testing.T) {
	needSlurm(t)
	out, exit := sbatch(t, []string{"-N2", "-n2"}, fmt.Sprintf("PATH=/nonexistent %s/mpirun %s/hello", bin, bin))
	if exit == "0:0" || !strings.Contains(out, "needs srun in PATH") {
		t.Fatalf("exit %s:\n%s", exit, out)
	}
}
