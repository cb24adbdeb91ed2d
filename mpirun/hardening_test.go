//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-hpc/parley/internal/proctest"
)

// Hostile and faulty hosts, each reproduced for real: a private /dev/shm
// (a mount namespace) that is small, out of inodes, read-only or holds a
// planted FIFO; a pids cgroup; an unprivileged user with a process limit
// or ranks the kernel refuses to read; a spawn that fails midway; a killed
// mpirun. These need root (namespaces, cgroups, other users).

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		proctest.Unavailable(t, "needs root (mount namespaces, cgroups, another user)")
	}
	for _, tool := range []string{"unshare", "setpriv", "prlimit"} {
		if _, err := exec.LookPath(tool); err != nil {
			proctest.Unavailable(t, "%s not found (apt-get install util-linux)", tool)
		}
	}
}

// inShmNamespace runs mpirun args with a private /dev/shm mounted with
// the tmpfs options opts (and setup run in it first).
func inShmNamespace(t *testing.T, opts, setup string, args ...string) result {
	t.Helper()
	script := fmt.Sprintf(`mount -t tmpfs -o %s tmpfs /dev/shm || exit 99; %s exec mpirun "$@"`, opts, setup)
	cmd := exec.Command("unshare", append([]string{"-m", "sh", "-c", script, "sh"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code == 99 {
		t.Fatalf("mount -o %s failed: %s", opts, errb.String())
	}
	return result{code, out.String(), errb.String()}
}

// TestShmHostileTmpfs: a /dev/shm that cannot hold the host's segments
// (too small, out of inodes, read-only) gives every rank of the host TCP,
// and mpirun says so in one line with the reason; the job completes. It
// used to hang (some ranks with shared memory, others without, and no TCP
// listener) or die of SIGBUS when a page of a sparse segment was touched.
func TestShmHostileTmpfs(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name, opts string
		np         int
		why        string
	}{
		{"too small", "size=256k", 4, "give it more room (in Docker: docker run --shm-size="},
		{"Docker's default 64 MiB, 40 ranks", "size=64m", 40, "the 40 ranks of this host need"},
		{"out of inodes", "size=256m,nr_inodes=3", 4, "room for 2 more files, the 4 ranks of this host need 4"},
		{"read-only", "size=64m,ro", 4, "read-only file system"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// 2 messages per pair: 40 ranks on 2 cores moving 8 per pair
			// (up to 1 MiB each) took 32-62 s under the race detector.
			r := inShmNamespace(t, tc.opts, "", "-np", fmt.Sprint(tc.np), "--oversubscribe", "--timeout", "120", "rankprog", "traffic", "5", "2")
			if r.code != 0 {
				t.Fatalf("exit status %d\n%s", r.code, r.stderr)
			}
			if n := strings.Count(r.stderr, "shared memory is off for this job"); n != 1 {
				t.Errorf("%d lines say shared memory is off, want 1:\n%s", n, r.stderr)
			}
			for _, want := range []string{tc.why, "talk over TCP"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if strings.Count(r.stdout, "traffic ok") != tc.np {
				t.Errorf("not every rank finished its traffic:\n%s", r.stdout)
			}
		})
	}
	t.Run("with --transport shm the job fails", func(t *testing.T) {
		r := inShmNamespace(t, "size=256k", "", "-np", "4", "--oversubscribe", "--transport", "shm", "rankprog", "hello")
		if r.code == 0 || !strings.Contains(r.stderr, "--transport shm: no shared memory on") {
			t.Fatalf("exit status %d\n%s", r.code, r.stderr)
		}
	})
}

// TestShmPlanted: things another user (or a stale job) left in /dev/shm
// do not stop a job: a FIFO named like a segment (the sweep of stale
// segments opened it and blocked forever), and files planted under the
// names a job's segments used to have (its id shows in /tmp), while the
// job starts.
func TestShmPlanted(t *testing.T) {
	needRoot(t)
	// Plant files under every name a job of the /tmp directories that
	// appear could have used, while it starts.
	planter := `mkfifo /dev/shm/parley-fifo; ( end=$(($(date +%s)+8)); while [ $(date +%s) -lt $end ]; do
		for d in /tmp/parley-*-*; do j=${d#/tmp/parley-}; j=${j%%-*}; for r in 0 1 2 3; do : > /dev/shm/parley-$j-$r 2>/dev/null; done; done; done ) &`
	r := inShmNamespace(t, "size=64m", planter, "-np", "4", "--oversubscribe", "--timeout", "30", "-v", "rankprog", "traffic", "6")
	if r.code != 0 {
		t.Fatalf("exit status %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "shared memory is off") {
		t.Errorf("planted files turned shared memory off:\n%s", r.stderr)
	}
	if strings.Count(r.stdout, "traffic ok") != 4 {
		t.Errorf("not every rank finished:\n%s", r.stdout)
	}
}

// TestProcessLimits: ranks that cannot all run under the host's limits
// are refused in one line before anything starts: a pids cgroup, and an
// unprivileged user's RLIMIT_NPROC. (-np 1500 under a pids limit of 4000
// used to abort mpirun with a goroutine dump, leaving files behind.)
func TestProcessLimits(t *testing.T) {
	needRoot(t)
	t.Run("pids cgroup", func(t *testing.T) {
		root := "/sys/fs/cgroup/pids"
		if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
			root = "/sys/fs/cgroup/unified" // cgroup v2
			if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err != nil || !strings.Contains(string(b), "pids") {
				proctest.Unavailable(t, "no pids cgroup controller here")
			}
		}
		cg := filepath.Join(root, fmt.Sprintf("parley-test-%d", os.Getpid()))
		if err := os.Mkdir(cg, 0o755); err != nil {
			proctest.Unavailable(t, "cannot make a pids cgroup: %v", err)
		}
		defer os.Remove(cg)
		if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte("100"), 0o644); err != nil {
			t.Fatal(err)
		}
		mark := fmt.Sprintf("pids-%d", time.Now().UnixNano())
		cmd := exec.Command("sh", "-c", fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec mpirun -x %s=%s -np 60 --oversubscribe rankprog hello`, cg, proctest.MarkerVar, mark))
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("mpirun in a pids cgroup of 100: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "60 ranks on") || !strings.Contains(string(out), "pids.max 100") || strings.Contains(string(out), "goroutine") {
			t.Errorf("output:\n%s", out)
		}
		if strings.Count(string(out), "mpirun: ") > 3 {
			t.Errorf("more than a line or two:\n%s", out)
		}
		if pids := proctest.WithMarker(mark); len(pids) > 0 {
			t.Errorf("processes started: %v", pids)
		}
	})
	t.Run("RLIMIT_NPROC of an unprivileged user", func(t *testing.T) {
		dir := userDir(t)
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
			"prlimit", "--nproc=60", filepath.Join(dir, "mpirun"), "-np", "40", "--oversubscribe", filepath.Join(dir, "rankprog"), "hello")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "RLIMIT_NPROC") {
			t.Fatalf("mpirun -np 40 under ulimit -u 60: %v\n%s", err, out)
		}
	})
	t.Run("a hostfile of 100000 slots", func(t *testing.T) {
		hf := filepath.Join(t.TempDir(), "hosts")
		os.WriteFile(hf, []byte("localhost slots=100000\n"), 0o644)
		r := mpirun(t, "--hostfile", hf, "rankprog", "hello")
		if r.code != 1 || !strings.Contains(r.stderr, "100000 ranks on") || !strings.Contains(r.stderr, "more may start here") {
			t.Fatalf("exit status %d\n%s", r.code, r.stderr)
		}
	})
}

// userDir copies this test binary, as mpirun and rankprog, into a
// directory another user can read.
func userDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "parley-user-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	exe, _ := os.Executable()
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mpirun", "rankprog"} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSingleCopyRefused: when the kernel refuses process_vm_readv (here:
// an unprivileged user's ranks that made themselves non-dumpable, as a
// restrictive ptrace policy does), large messages still arrive, copied
// through the rings, and mpirun says once that single copy is off.
func TestSingleCopyRefused(t *testing.T) {
	needRoot(t)
	dir := userDir(t)
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		filepath.Join(dir, "mpirun"), "-np", "3", "--oversubscribe", "-x", "PARLEY_DEBUG=nondumpable=1",
		filepath.Join(dir, "rankprog"), "traffic", "8")
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if n := strings.Count(errb.String(), "single-copy transfers between ranks are off"); n != 1 {
		t.Errorf("%d notices of single copy off, want 1:\n%s", n, errb.String())
	}
	if strings.Count(out.String(), "traffic ok") != 3 {
		t.Errorf("traffic failed:\n%s", out.String())
	}
}

// TestSpawnFailureMidway: when a rank cannot start, no later rank is
// started, those that did are stopped, the summary names the rank, and
// nothing is left: processes, segments, temporary directories (checked in
// a private /dev/shm and TMPDIR, which no other test writes to).
func TestSpawnFailureMidway(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	mark := fmt.Sprintf("midway-%d", time.Now().UnixNano())
	script := fmt.Sprintf(`mount -t tmpfs -o size=64m tmpfs /dev/shm || exit 99
export TMPDIR=%s
PARLEY_DEBUG=fail_spawn=2 mpirun -x %s=%s -np 4 --oversubscribe rankprog block; echo "status $?"
sleep 1; echo left: $(ls /dev/shm) $(ls $TMPDIR)`, tmp, proctest.MarkerVar, mark)
	out, _ := exec.Command("unshare", "-m", "sh", "-c", script).CombinedOutput()
	s := string(out)
	if !strings.Contains(s, "status 1") || !strings.Contains(s, "rank 1 could not start") {
		t.Fatalf("output:\n%s", s)
	}
	if strings.Contains(s, "stopping the other 3") {
		t.Errorf("counts ranks that never started as running:\n%s", s)
	}
	if i := strings.Index(s, "left:"); i < 0 || strings.TrimSpace(s[i+len("left:"):]) != "" {
		t.Errorf("files left behind:\n%s", s)
	}
	if pids := proctest.WithMarker(mark); len(pids) > 0 {
		t.Errorf("ranks left running: %v", pids)
	}
}

// TestKilledMpirunSwept: what a SIGKILLed job could not remove (mpirun's
// temporary directory, its ranks' segments) is removed by the next job on
// the host (in a private /dev/shm and TMPDIR). The ranks are killed with
// mpirun, first: a rank that outlives mpirun by an instant sees its
// connection to mpirun close and removes its own segment.
func TestKilledMpirunSwept(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	script := fmt.Sprintf(`mount -t tmpfs -o size=64m tmpfs /dev/shm || exit 99
export TMPDIR=%s
mpirun -np 2 rankprog block & pid=$!
for i in $(seq 200); do [ $(ls /dev/shm | wc -l) -ge 2 ] && [ $(ls $TMPDIR | wc -l) -ge 1 ] && break; sleep 0.05; done
echo before: $(ls /dev/shm) $(ls $TMPDIR)
kill -9 $(pgrep -P $pid) $pid; wait $pid
sleep 1
echo stale: $(ls /dev/shm) $(ls $TMPDIR)
mpirun -np 2 rankprog hello >/dev/null || echo "second job failed"
echo after: $(ls /dev/shm) $(ls $TMPDIR)`, tmp)
	out, err := exec.Command("unshare", "-m", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := map[string][]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			lines[k] = strings.Fields(v)
		}
	}
	if len(lines["stale"]) < 3 {
		t.Fatalf("a killed mpirun left fewer than its 2 segments and a directory: the test tests nothing\n%s", out)
	}
	if len(lines["after"]) > 0 || strings.Contains(string(out), "second job failed") {
		t.Fatalf("the next job did not sweep what the killed one left:\n%s", out)
	}
}

// TestMessages: failures say what happened.
func TestMessages(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/lib\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "lib.go"), []byte("package lib\n\nfunc F() {}\n"), 0o644)
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"missing working directory", nil, []string{"-np", "2", "--wdir", "/nonexistent", "rankprog", "hello"}, 1,
			"working directory /nonexistent does not exist on"},
		{"a library package", nil, []string{"-np", "2", dir}, 2, "holds package lib, not a command (package main)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("mpirun", tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tc.code || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit status %d (want %d)\n%s\nwant %q", code, tc.code, errb.String(), tc.want)
			}
		})
	}
}

// TestThreadsPerRank: mpirun's OS threads do not grow with its ranks (it
// waits for them through pidfds, not a thread blocked in wait4 each).
func TestThreadsPerRank(t *testing.T) {
	mark := fmt.Sprintf("threads-%d", time.Now().UnixNano())
	cmd := exec.Command("mpirun", "-x", proctest.MarkerVar+"="+mark, "-np", "48", "--oversubscribe", "rankprog", "block")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		proctest.Eventually(5*time.Second, func() bool { return len(proctest.WithMarker(mark)) == 0 })
	}()
	if !proctest.Eventually(60*time.Second, func() bool { return len(proctest.WithMarker(mark)) == 48 }) {
		t.Fatalf("48 ranks did not start: %d", len(proctest.WithMarker(mark)))
	}
	time.Sleep(200 * time.Millisecond)
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	threads := 0
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			fmt.Sscan(v, &threads)
		}
	}
	if threads == 0 || threads > 24 {
		t.Errorf("mpirun runs %d OS threads for 48 ranks", threads)
	}
	t.Logf("mpirun with 48 local ranks: %d threads", threads)
}
