package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-hpc/parley/internal/proctest"
)

var (
	bin      string // mpirun, testprog and the examples, built for the tests
	hosts    []string
	skipWhy  string
	hxDir    string
	hostsRan bool
)

// TestMain builds the programs, brings up three hosts and tears them
// down at the end.
func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "parley-cluster-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin = dir
		os.Chmod(dir, 0o755)
		for _, p := range []string{"../../mpirun", "./testprog", "../../examples/hello", "../../examples/ring", "../../bench"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(p)), p)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "build", p, err)
				return 1
			}
		}
		skipWhy = hostsUp(3)
		if skipWhy == "" {
			defer hostsDown()
		}
		defer stopSlurm()
		return proctest.Run(m)
	}()
	os.Exit(code)
}

func hostsUp(n int) string {
	if os.Geteuid() != 0 {
		return "the multi-host tests need root (network namespaces and sshd)"
	}
	for _, tool := range []string{"ip", "/usr/sbin/sshd", "ssh", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s not found (apt-get install iproute2 openssh-server openssh-client util-linux)", tool)
		}
	}
	hxDir = "/run/parley-hx-test"
	cmd := exec.Command("bash", "hosts-up.sh", strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "HX_DIR="+hxDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("hosts-up.sh failed (no namespaces here?): %v\n%s", err, out)
	}
	hostsRan = true
	for i := 1; i <= n; i++ {
		hosts = append(hosts, fmt.Sprintf("host%d", i))
	}
	return ""
}

func hostsDown() {
	if !hostsRan {
		return
	}
	cmd := exec.Command("bash", "hosts-down.sh")
	cmd.Env = append(os.Environ(), "HX_DIR="+hxDir)
	cmd.Run()
}

func needHosts(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		proctest.Unavailable(t, "%s", skipWhy)
	}
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// mpirun runs the built mpirun and checks afterwards that no process of
// the job (rank or agent, on any host: they share one pid namespace) is
// left.
func mpirun(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "mpirun"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	checkNoneLeft(t)
	return r
}

// jobProcesses lists processes running a program from the test's bin
// directory: the ranks, and the agents (mpirun --agent).
func jobProcesses() []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(cl, []byte(bin+"/")) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		found = append(found, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cl), "\x00", " ")))
	}
	return found
}

func checkNoneLeft(t *testing.T) {
	t.Helper()
	if !proctest.Eventually(5*time.Second, func() bool { return len(jobProcesses()) == 0 }) {
		t.Errorf("processes of the job left after mpirun exited:\n%s", strings.Join(jobProcesses(), "\n"))
	}
}

func TestHelloAcrossHosts(t *testing.T) {
	needHosts(t)
	r := mpirun(t, "-H", strings.Join(hosts, ":2,")+":2", filepath.Join(bin, "hello"))
	if r.code != 0 {
		t.Fatalf("status %d\n%s", r.code, r.stderr)
	}
	re := regexp.MustCompile(`(?m)^hello from rank (\d) of 6 on (\S+) `)
	ms := re.FindAllStringSubmatch(r.stdout, -1)
	on := map[string]int{}
	for _, m := range ms {
		on[m[2]]++
	}
	if len(ms) != 6 || on["host1"] != 2 || on["host2"] != 2 || on["host3"] != 2 {
		t.Fatalf("ranks per host %v:\n%s", on, r.stdout)
	}
	t.Logf("3 hosts x 2 ranks: %v", r.took)
}

// TestOutputFilesAcrossHosts: --output-filename holds each remote rank's
// output in its own file.
func TestOutputFilesAcrossHosts(t *testing.T) {
	needHosts(t)
	dir := t.TempDir()
	r := mpirun(t, "-H", "host1:1,host2:1,host3:1", "--output-filename", dir+":nocopy", filepath.Join(bin, "hello"))
	if r.code != 0 || strings.Contains(r.stdout, "hello") {
		t.Fatalf("status %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for rank := range 3 {
		b, err := os.ReadFile(filepath.Join(dir, "1", fmt.Sprintf("rank.%d", rank), "stdout"))
		want := fmt.Sprintf("hello from rank %d of 3 on host%d ", rank, rank+1)
		if err != nil || !strings.HasPrefix(string(b), want) {
			t.Errorf("rank %d's stdout file: %q %v, want %q...", rank, b, err, want)
		}
	}
}

func TestRingAcrossHosts(t *testing.T) {
	needHosts(t)
	r := mpirun(t, "-v", "-H", strings.Join(hosts, ":2,")+":2", filepath.Join(bin, "ring"), "-laps", "20", "-size", "300000")
	if r.code != 0 || !strings.Contains(r.stdout, "checksum ok") {
		t.Fatalf("status %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// Ranks 0 and 1 share host1 (shm); rank 1 talks to rank 2 on host2 (tcp).
	for _, want := range []string{`"rank": 0, "peer": 1, "via": "shm"`, `"rank": 1, "peer": 2, "via": "tcp", "addr": "198.19.0.12:`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("-v lacks %s:\n%s", want, r.stderr)
		}
	}
}

func TestHostfiles(t *testing.T) {
	needHosts(t)
	dir := t.TempDir()
	for name, text := range map[string]string{
		"openmpi": "# Open MPI syntax\nhost1 slots=2 max_slots=4\nhost2 slots=1\n",
		"hydra":   "host1:2\nhost2:1\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, name)
			os.WriteFile(f, []byte(text), 0o644)
			r := mpirun(t, "--hostfile", f, filepath.Join(bin, "testprog"), "hello")
			if r.code != 0 {
				t.Fatalf("status %d\n%s", r.code, r.stderr)
			}
			for _, want := range []string{"rank 0 of 3 on host1", "rank 1 of 3 on host1", "rank 2 of 3 on host2"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("no %q:\n%s", want, r.stdout)
				}
			}
		})
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("host1 slots=2\nhost2 slots=many\n"), 0o644)
	r := mpirun(t, "--hostfile", bad, filepath.Join(bin, "hello"))
	if r.code != 2 || !strings.Contains(r.stderr, "line 2") {
		t.Fatalf("bad hostfile: status %d\n%s", r.code, r.stderr)
	}
}

func TestUnreachableHost(t *testing.T) {
	needHosts(t)
	r := mpirun(t, "-H", "host1,198.19.0.99", filepath.Join(bin, "hello"))
	if r.code == 0 || !strings.Contains(r.stderr, "198.19.0.99") || r.took > 20*time.Second {
		t.Fatalf("status %d after %v\n%s", r.code, r.took, r.stderr)
	}
	r = mpirun(t, "-H", "host1,no-such-host.invalid", filepath.Join(bin, "hello"))
	if r.code == 0 || !strings.Contains(r.stderr, "no-such-host.invalid") {
		t.Fatalf("status %d\n%s", r.code, r.stderr)
	}
}

// startBlocking starts a job of blocking ranks on host1 and host2 and
// waits until all have reported where they run.
func startBlocking(t *testing.T) (*exec.Cmd, *bytes.Buffer, map[int][2]string) {
	return startBlockingArgs(t)
}

// startBlockingArgs is startBlocking with more mpirun flags.
func startBlockingArgs(t *testing.T, flags ...string) (*exec.Cmd, *bytes.Buffer, map[int][2]string) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	args := append(append([]string{"-x", "TESTPROG_DIR=" + dir}, flags...), "-H", "host1:2,host2:2",
		filepath.Join(bin, "testprog"), "block")
	cmd := exec.Command(filepath.Join(bin, "mpirun"), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	where := map[int][2]string{}
	if !proctest.Eventually(20*time.Second, func() bool {
		for r := 0; r < 4; r++ {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("rank%d", r)))
			if err != nil {
				return false
			}
			f := strings.Fields(string(b))
			where[r] = [2]string{f[0], f[1]}
		}
		return true
	}) {
		cmd.Process.Kill()
		t.Fatalf("ranks did not start:\n%s", errb.String())
	}
	return cmd, &errb, where
}

func TestRemoteRankKilled(t *testing.T) {
	needHosts(t)
	cmd, errb, where := startBlocking(t)
	pid, _ := strconv.Atoi(where[3][1])
	syscall.Kill(pid, syscall.SIGKILL)
	err := cmd.Wait()
	ee, _ := err.(*exec.ExitError)
	if ee == nil || ee.ExitCode() != 137 || !strings.Contains(errb.String(), "rank 3 (pid "+where[3][1]+" on host2) was killed by signal 9") {
		t.Fatalf("mpirun: %v\n%s", err, errb.String())
	}
	checkNoneLeft(t)
}

func TestAgentKilled(t *testing.T) {
	needHosts(t)
	cmd, errb, _ := startBlocking(t)
	// The agent of host2 is the "mpirun --agent --agent-node 1" process.
	var agent int
	for _, p := range jobProcesses() {
		if strings.Contains(p, "--agent-node 1 ") {
			agent, _ = strconv.Atoi(strings.Fields(p)[0])
		}
	}
	if agent == 0 {
		cmd.Process.Kill()
		t.Fatalf("no agent for host2 among:\n%s", strings.Join(jobProcesses(), "\n"))
	}
	syscall.Kill(agent, syscall.SIGKILL)
	err := cmd.Wait()
	if err == nil || !strings.Contains(errb.String(), "lost the node agent on host2") {
		t.Fatalf("mpirun: %v\n%s", err, errb.String())
	}
	checkNoneLeft(t)
}

// TestAgentTerminated: an agent that gets SIGTERM (from a scheduler, say)
// kills its ranks and removes its files before it exits: its temporary
// directory and its host's segments (they used to stay).
func TestAgentTerminated(t *testing.T) {
	needHosts(t)
	cmd, errb, _ := startBlocking(t)
	var agent int
	for _, p := range jobProcesses() {
		if strings.Contains(p, "--agent-node 1 ") {
			agent, _ = strconv.Atoi(strings.Fields(p)[0])
		}
	}
	job := jobOf(t)
	if agent == 0 || job == "" {
		cmd.Process.Kill()
		t.Fatalf("no agent for host2, or no job id, among:\n%s", strings.Join(jobProcesses(), "\n"))
	}
	if files := jobFiles(job); len(files) == 0 {
		t.Fatal("the job has no files: the test tests nothing")
	}
	syscall.Kill(agent, syscall.SIGTERM)
	cmd.Wait()
	checkNoneLeft(t)
	if !proctest.Eventually(5*time.Second, func() bool { return len(jobFiles(job)) == 0 }) {
		t.Errorf("files of the job left after its agent was terminated: %v\n%s", jobFiles(job), errb.String())
	}
}

// jobOf returns the job id of the running job's ranks.
func jobOf(t *testing.T) string {
	for _, p := range jobProcesses() {
		pid := strings.Fields(p)[0]
		env, _ := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "PARLEY_JOB="); ok {
				return v
			}
		}
	}
	return ""
}

// jobFiles lists job's segments and temporary directories (the emulated
// hosts share this machine's file systems).
func jobFiles(job string) []string {
	var out []string
	for _, pat := range []string{"/dev/shm/parley-" + job + "-*", filepath.Join(os.TempDir(), "parley-"+job+"-*")} {
		m, _ := filepath.Glob(pat)
		out = append(out, m...)
	}
	return out
}

// TestIfaceBindsListeners: with --iface, mpirun's listener for agents is
// bound to that network's address, not to every address, and the job runs.
func TestIfaceBindsListeners(t *testing.T) {
	needHosts(t)
	cmd, errb, _ := startBlockingArgs(t, "--iface", "198.19.0.0/24")
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		checkNoneLeft(t)
	}()
	out, err := exec.Command("ss", "-ltnpH").Output()
	if err != nil {
		proctest.Unavailable(t, "ss: %v", err)
	}
	pid := fmt.Sprintf("pid=%d,", cmd.Process.Pid)
	var mine []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, pid) {
			mine = append(mine, l)
		}
	}
	if len(mine) == 0 {
		t.Fatalf("mpirun listens on nothing?\n%s\n%s", out, errb.String())
	}
	for _, l := range mine {
		if f := strings.Fields(l); len(f) < 4 || !strings.HasPrefix(f[3], "198.19.0.") {
			t.Errorf("mpirun listens on %s with --iface 198.19.0.0/24", l)
		}
	}
}

func TestMpirunKilled(t *testing.T) {
	needHosts(t)
	cmd, _, _ := startBlocking(t)
	cmd.Process.Kill()
	cmd.Wait()
	checkNoneLeft(t)
}

// TestLaunchTime compares the launch of 3 hosts x 2 ranks with Open MPI's
// mpirun on the same hosts, when it is installed (a report, not a limit).
func TestLaunchTime(t *testing.T) {
	needHosts(t)
	ompi, err := exec.LookPath("mpirun.openmpi")
	if err != nil {
		proctest.Unavailable(t, "no mpirun.openmpi: apt-get install openmpi-bin")
	}
	hl := strings.Join(hosts, ":2,") + ":2"
	var ours, theirs []time.Duration
	for i := 0; i < 3; i++ {
		r := mpirun(t, "-H", hl, filepath.Join(bin, "hello"))
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		ours = append(ours, r.took)
		start := time.Now()
		out, err := exec.Command(ompi, "--allow-run-as-root", "--bind-to", "none", "-H", hl, "hostname").CombinedOutput()
		if err != nil {
			proctest.Unavailable(t, "mpirun.openmpi failed on the emulated hosts: %v\n%s", err, out)
		}
		theirs = append(theirs, time.Since(start))
	}
	t.Logf("launch of 3 hosts x 2 ranks: parley hello %v, Open MPI hostname %v", ours, theirs)
}

// TestTreeLaunch forces the tree launch on three hosts: host1's agent
// starts host2's, mpirun starts host1's and host3's.
func TestTreeLaunch(t *testing.T) {
	needHosts(t)
	t.Setenv("PARLEY_SSH_TREE_MIN", "2")
	r := mpirun(t, "-H", strings.Join(hosts, ":1,")+":1", filepath.Join(bin, "testprog"), "hello")
	if r.code != 0 {
		t.Fatalf("status %d\n%s", r.code, r.stderr)
	}
	for _, h := range hosts {
		if !strings.Contains(r.stdout, "on "+h) {
			t.Errorf("no rank on %s:\n%s", h, r.stdout)
		}
	}
}

// TestBenchAcrossHosts: bench compare -hosts runs its ranks on two hosts
// (rank 0 on host1, rank 1 on host2), over TCP, and against Open MPI on
// the same hosts when it is installed (the way bench/hosts.sh measures).
func TestBenchAcrossHosts(t *testing.T) {
	needHosts(t)
	impls := "parley"
	if _, err := exec.LookPath("mpicc.openmpi"); err == nil {
		impls += ",openmpi"
	}
	dir := t.TempDir()
	out, err := exec.Command(filepath.Join(bin, "bench"), "compare", "-np", "2", "-reps", "1", "-impl", impls,
		"-hosts", hosts[0]+","+hosts[1], "-json", filepath.Join(dir, "c.json"), "latency", "--smoke", "-m", "0:64").CombinedOutput()
	if err != nil {
		t.Fatalf("bench compare -hosts: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "transport tcp") {
		t.Errorf("compare across hosts did not run over TCP:\n%s", out)
	}
	if strings.Contains(impls, "openmpi") && !strings.Contains(string(out), "parley/openmpi") {
		t.Errorf("no Open MPI column:\n%s", out)
	}
}

// TestVerbsSelection: between hosts without an RDMA adapter (these have
// none), a program built with -tags verbs says with -v why it uses TCP,
// and --transport verbs fails at start-up naming what is missing: the
// adapter in a verbs build, the build tag in the default one.
func TestVerbsSelection(t *testing.T) {
	needHosts(t)
	hv := filepath.Join(bin, "ring-verbs")
	cmd := exec.Command("go", "build", "-tags", "verbs", "-o", hv, "../../examples/ring")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		proctest.Unavailable(t, "go build -tags verbs (libibverbs-dev): %v\n%s", err, out)
	}
	two := "host1:1,host2:1"
	r := mpirun(t, "-v", "-H", two, hv, "-laps", "3")
	for _, want := range []string{"checksum ok", "verbs not used between hosts; TCP is", "no RDMA device", `"via": "tcp"`} {
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, want) {
			t.Fatalf("auto: status %d, no %q:\n%s\n%s", r.code, want, r.stdout, r.stderr)
		}
	}
	for _, c := range []struct{ prog, want string }{
		{hv, "--transport verbs: no RDMA device"},
		{filepath.Join(bin, "ring"), "--transport verbs: this binary was built without RDMA verbs support (go build -tags verbs"},
	} {
		r := mpirun(t, "--transport", "verbs", "-H", two, c.prog)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("--transport verbs, %s: status %d, want %q:\n%s", filepath.Base(c.prog), r.code, c.want, r.stderr)
		}
	}
}
