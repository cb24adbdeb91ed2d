//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/parley-hpc/parley/internal/proctest"
)

func TestMain(m *testing.M) {
	os.Exit(testscript.RunMain(proctest.Watched(m), map[string]func() int{
		"mpirun":   func() int { return run(os.Args[1:], os.Stdout, os.Stderr) },
		"rankprog": rankprog,
	}))
}

// TestScripts runs the command-line scripts in testdata/script: flags,
// messages and exit statuses as users see them.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}

type result struct {
	code           int
	stdout, stderr string
}

// mpirun runs the mpirun command (this test binary) with args and a marker
// in the ranks' environment, and checks afterwards that no process of the
// job is left.
func mpirun(t *testing.T, args ...string) result {
	t.Helper()
	mark := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	full := append([]string{"-x", proctest.MarkerVar + "=" + mark}, args...)
	cmd := exec.Command("mpirun", full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mpirun %v: %v", args, err)
	}
	if !proctest.Eventually(2*time.Second, func() bool { return len(proctest.WithMarker(mark)) == 0 }) {
		t.Errorf("processes of the job still alive after mpirun exited: %v", proctest.WithMarker(mark))
	}
	return result{code, out.String(), errb.String()}
}

func TestFailures(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr []string
	}{
		{"exit status", []string{"-np", "3", "rankprog", "exit", "3", "1"}, 3,
			[]string{"rank 1 (pid ", "exited with status 3", "stopping the other 2 ranks"}},
		{"killed by signal", []string{"-np", "2", "rankprog", "kill", "1"}, 137,
			[]string{"rank 1 (pid ", "killed by signal 9 (killed)"}},
		{"abort", []string{"-np", "2", "rankprog", "abort", "5", "0"}, 5,
			[]string{"rank 0 (pid ", "called Abort(5)"}},
		{"no finalize", []string{"-np", "2", "rankprog", "nofinalize"}, 1,
			[]string{"without calling comm.Finalize"}},
		{"missing program", []string{"-np", "2", "/nonexistent/prog"}, 127,
			[]string{"/nonexistent/prog does not exist"}},
		{"killed rank named over tcp, not the survivor that aborts", []string{"-np", "2", "--transport", "tcp", "rankprog", "killabort", "1"}, 137,
			[]string{"rank 1 (pid ", "was killed by signal 9"}},
		{"timeout with cycle", []string{"-np", "3", "--timeout", "2s", "rankprog", "cycle"}, 124,
			[]string{"blocked in recv from rank 1, tag 7", "in a cycle (no progress in 500ms): 0 -> 1 -> 2 -> 0",
				"job stopped after --timeout 2s; stopping the 3 ranks"}},
		{"hang report of several goroutines and a collective", []string{"-np", "2", "--timeout", "2s", "rankprog", "hangmix"}, 124,
			[]string{"blocked in probe from rank 1, tag 3 on world", "blocked in waitany over 2 requests, the first of a recv from rank 1, tag 4 on world",
				"1 message(s) arrived that no receive matches: from rank 1, tag 9 on world, 5 bytes",
				"blocked in a shared-memory collective from rank 0, barrier (collective call 1) on world", "in a cycle (no progress in 500ms): 0 -> 1 -> 0"}},
		{"hang report of a barrier through messages", []string{"-np", "2", "--transport", "tcp", "--timeout", "2s", "rankprog", "hangmix"}, 124,
			[]string{"2 message(s) arrived that no receive matches: from rank 1, barrier (collective call 1) on world, 0 bytes; from rank 1, tag 9 on world, 5 bytes",
				"blocked in recv from rank 0, barrier (collective call 1) on world", "in a cycle (no progress in 500ms): 0 -> 1 -> 0"}},
		{"hang report of a nonblocking collective", []string{"-np", "2", "--timeout", "2s", "rankprog", "iallreduce"}, 124,
			[]string{"blocked in wait of iallreduce, iallreduce (collective call 1) on world"}},
		{"reduce with different roots is a cycle", []string{"-np", "3", "--oversubscribe", "--timeout", "2s", "rankprog", "reduceroots"}, 124,
			[]string{"reduce (collective call 1) on world", "in a cycle (no progress in 500ms): 0 -> 2 -> 0"}},
		{"one rank skips init", []string{"-np", "2", "--oversubscribe", "sh", "-c", `if [ "$PARLEY_RANK" = 1 ]; then exit 0; fi; exec rankprog hello`}, 1,
			[]string{"rank 1 exited (status 0) while other ranks wait"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := mpirun(t, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", r.code, tc.code, r.stderr)
			}
			for _, s := range tc.inStderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			if strings.Count(r.stderr, "mpirun: ") > 3 {
				t.Errorf("more than one summary:\n%s", r.stderr)
			}
			t.Logf("took %v", time.Since(start))
		})
	}
}

func TestSuccess(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		inStdout []string
	}{
		{"hello 3", []string{"-np", "3", "rankprog", "hello"}, []string{"rank 0 of 3", "rank 1 of 3", "rank 2 of 3"}},
		{"singleton in mpirun", []string{"-np", "1", "rankprog", "hello"}, []string{"rank 0 of 1"}},
		{"truncation", []string{"-np", "2", "rankprog", "truncate"}, []string{"truncated: recv on world (rank 1, peer 0, tag 1): message of 100 bytes does not fit the 10-byte receive buffer"}},
		{"stranger refused", []string{"-np", "2", "rankprog", "stranger"}, []string{"rank 0 fine", "rank 1 fine"}},
		{"non-parley program", []string{"-np", "2", "rankprog", "noinit"}, []string{"noinit ran\nnoinit ran\n"}},
		{"tag output", []string{"-np", "2", "--tag-output", "rankprog", "hello"}, []string{"[1,0]<stdout>:rank 0 of 2\n", "[1,1]<stdout>:rank 1 of 2\n"}},
		{"export", []string{"-np", "1", "-x", "PARLEY_TEST_X=42", "rankprog", "env"}, []string{"rank 0 PARLEY_TEST_X=42"}},
		{"traffic shm", []string{"-np", "4", "rankprog", "traffic", "11"}, []string{"rank 0 traffic ok", "rank 3 traffic ok"}},
		{"traffic tcp", []string{"-np", "4", "--transport", "tcp", "rankprog", "traffic", "12"}, []string{"rank 0 traffic ok", "rank 3 traffic ok"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := mpirun(t, tc.args...)
			if r.code != 0 {
				t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			for _, s := range tc.inStdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
		})
	}
}

func TestSingleton(t *testing.T) {
	out, err := exec.Command("rankprog", "hello").CombinedOutput()
	if err != nil || string(out) != "rank 0 of 1\n" {
		t.Fatalf("rankprog without mpirun: %q, %v", out, err)
	}
}

func TestStdinToRankZero(t *testing.T) {
	cmd := exec.Command("mpirun", "-np", "2", "rankprog", "stdin")
	cmd.Stdin = strings.NewReader(strings.Repeat("x", 200000))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rank 0 read 200000 bytes") {
		t.Fatalf("stdin forwarding: %v\n%s", err, out)
	}
}

// TestInterrupt sends SIGINT to mpirun while its ranks block, and checks
// that nothing of the job is alive 2 s later; then the same with SIGKILL
// to mpirun itself (the ranks die with it).
func TestInterrupt(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			mark := fmt.Sprintf("interrupt-%d-%d", sig, time.Now().UnixNano())
			piddir := t.TempDir()
			cmd := exec.Command("mpirun", "-x", proctest.MarkerVar+"="+mark, "-x", "PARLEY_TEST_PIDDIR="+piddir,
				"-np", "3", "--oversubscribe", "rankprog", "block")
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !proctest.Eventually(20*time.Second, func() bool {
				m, _ := filepath.Glob(filepath.Join(piddir, "*.pid"))
				return len(m) == 3
			}) {
				cmd.Process.Kill()
				t.Fatalf("ranks did not start:\n%s", errb.String())
			}
			job, _ := os.ReadFile(filepath.Join(piddir, "job"))
			if len(segments(string(job))) != 3 {
				t.Errorf("job %s has segments %v, want 3", job, segments(string(job)))
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			if !proctest.Eventually(2*time.Second, func() bool { return len(proctest.WithMarker(mark)) == 0 }) {
				t.Errorf("after %v to mpirun, still alive: %v", sig, proctest.WithMarker(mark))
			}
			if sig == syscall.SIGKILL {
				// Nobody cleaned up; the next job's first rank sweeps.
				if r := mpirun(t, "-np", "2", "rankprog", "hello"); r.code != 0 {
					t.Fatalf("next job: %d\n%s", r.code, r.stderr)
				}
			}
			if s := segments(string(job)); len(s) != 0 {
				t.Errorf("segments of job %s left after %v to mpirun: %v", job, sig, s)
			}
			if sig != syscall.SIGKILL {
				ee, _ := err.(*exec.ExitError)
				if ee == nil || ee.ExitCode() != 128+int(sig) {
					t.Errorf("mpirun exit after %v: %v, want status %d\n%s", sig, err, 128+int(sig), errb.String())
				}
			}
		})
	}
}

func TestOversubscribedRing(t *testing.T) {
	r := mpirun(t, "-np", "5", "rankprog", "hello")
	if r.code != 0 || strings.Count(r.stdout, " of 5\n") != 5 {
		t.Fatalf("5 ranks: status %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "unbound") && runtimeCPUs() < 5 {
		t.Errorf("no oversubscription warning:\n%s", r.stderr)
	}
}

// segments lists the shared-memory segments of a job.
func segments(job string) []string {
	if job == "" {
		return []string{"(no job id)"}
	}
	m, _ := filepath.Glob("/dev/shm/parley-" + job + "-*")
	return m
}

// TestSegmentsRemoved: a job's segments disappear when it ends normally
// and when a rank is killed.
func TestSegmentsRemoved(t *testing.T) {
	for _, args := range [][]string{{"rankprog", "job"}, {"rankprog", "kill", "1"}} {
		t.Run(args[1], func(t *testing.T) {
			piddir := t.TempDir()
			r := mpirun(t, append([]string{"-np", "3", "-x", "PARLEY_TEST_PIDDIR=" + piddir}, args...)...)
			job, _ := os.ReadFile(filepath.Join(piddir, "job"))
			if len(job) == 0 {
				t.Fatalf("no job id (status %d):\n%s", r.code, r.stderr)
			}
			if s := segments(string(job)); len(s) != 0 {
				t.Errorf("segments left: %v", s)
			}
		})
	}
}

func runtimeCPUs() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			n := 0
			for _, part := range strings.Split(strings.TrimSpace(v), ",") {
				lo, hi, _ := strings.Cut(part, "-")
				a, _ := strconv.Atoi(lo)
				b := a
				if hi != "" {
					b, _ = strconv.Atoi(hi)
				}
				n += b - a + 1
			}
			return n
		}
	}
	return 1
}

// TestBinding runs real ranks and reads their Cpus_allowed_list: bound to
// one core each by default, unbound with --bind-to none and when the ranks
// outnumber the cores unevenly, bound round robin when they share the
// cores evenly, and --report-bindings prints a line per rank.
func TestBinding(t *testing.T) {
	cpus := runtimeCPUs()
	if cpus < 2 {
		proctest.Unavailable(t, "needs two cpus, this machine has %d", cpus)
	}
	allowed := func(out string, rank int) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, fmt.Sprintf("rank %d Cpus_allowed_list:", rank)) {
				f := strings.Fields(l)
				return f[3] + " " + f[4]
			}
		}
		return ""
	}
	r := mpirun(t, "-np", "2", "--report-bindings", "rankprog", "cpus")
	if r.code != 0 {
		t.Fatalf("%d\n%s", r.code, r.stderr)
	}
	a0, a1 := allowed(r.stdout, 0), allowed(r.stdout, 1)
	f0, f1 := strings.Fields(a0), strings.Fields(a1)
	if len(f0) != 2 || len(f1) != 2 || strings.ContainsAny(f0[0], ",-") || f0[0] == f1[0] || "cpuset="+f0[0] != f0[1] {
		t.Errorf("ranks not bound to distinct single cpus with a matching PARLEY_CPUSET: %q, %q", a0, a1)
	}
	if strings.Count(r.stderr, "bound to cpus") != 2 || !strings.Contains(r.stderr, "[B") {
		t.Errorf("--report-bindings:\n%s", r.stderr)
	}
	r = mpirun(t, "-np", "2", "--bind-to", "none", "rankprog", "cpus")
	if f := strings.Fields(allowed(r.stdout, 0)); len(f) != 2 || f[1] != "cpuset=" || !strings.ContainsAny(f[0], ",-") {
		t.Errorf("--bind-to none: %q", allowed(r.stdout, 0))
	}
	r = mpirun(t, "-np", fmt.Sprint(cpus+1), "rankprog", "cpus")
	if !strings.Contains(r.stderr, "run unbound") || strings.Fields(allowed(r.stdout, 0))[1] != "cpuset=" {
		t.Errorf("oversubscribed: %q\n%s", allowed(r.stdout, 0), r.stderr)
	}
	// Twice as many ranks as cores: an even share, bound round robin.
	r = mpirun(t, "-np", fmt.Sprint(2*cpus), "rankprog", "cpus")
	for rank := 0; rank < 2*cpus; rank++ {
		f := strings.Fields(allowed(r.stdout, rank))
		g := strings.Fields(allowed(r.stdout, rank%cpus))
		if len(f) != 2 || strings.ContainsAny(f[0], ",-") || "cpuset="+f[0] != f[1] || len(g) != 2 || f[0] != g[0] {
			t.Errorf("evenly oversubscribed: rank %d has %q, rank %d %q; want one cpu, shared round robin\n%s", rank, f, rank%cpus, g, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "bound round robin") {
		t.Errorf("evenly oversubscribed: no warning\n%s", r.stderr)
	}
	r = mpirun(t, "--map-by", "ppr:64:socket", "rankprog", "cpus")
	if r.code == 0 || !strings.Contains(r.stderr, "--oversubscribe") {
		t.Errorf("impossible mapping accepted: %d\n%s", r.code, r.stderr)
	}
}

// TestHangReportNoFalseCycle: a healthy exchange caught mid-flight is not
// reported as a deadlock: each snapshot may show ranks blocked on each
// other, but they make progress between the two.
func TestHangReportNoFalseCycle(t *testing.T) {
	r := mpirun(t, "-np", "3", "--oversubscribe", "--timeout", "2s", "rankprog", "stream")
	if r.code != 124 {
		t.Fatalf("exit status %d, want 124\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "cycle") {
		t.Fatalf("a healthy ring of large messages was reported as a cycle:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "what each rank was doing") {
		t.Fatalf("no hang report:\n%s", r.stderr)
	}
}

// TestInterruptReport: Ctrl-C on a job that has run for a few seconds
// prints the hang report before stopping it.
func TestInterruptReport(t *testing.T) {
	mark := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	cmd := exec.Command("mpirun", "-x", proctest.MarkerVar+"="+mark, "-np", "2", "rankprog", "cycle")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(interruptAfter)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("mpirun after Ctrl-C: %v, want exit status 130\n%s", err, errb.String())
	}
	for _, want := range []string{"interrupted after", "what each rank was doing", "blocked in recv from rank 1, tag 7 on world"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if !proctest.Eventually(2*time.Second, func() bool { return len(proctest.WithMarker(mark)) == 0 }) {
		t.Errorf("processes of the job still alive: %v", proctest.WithMarker(mark))
	}
}

// interruptAfter is past launcher's interruptReportAfter (3 s).
const interruptAfter = 3500 * time.Millisecond

// TestCPUsPerRank: --cpus-per-rank N binds N cores to a rank and gives it
// GOMAXPROCS=N.
func TestCPUsPerRank(t *testing.T) {
	if runtimeCPUs() < 2 {
		proctest.Unavailable(t, "needs two cpus")
	}
	r := mpirun(t, "-np", "1", "--cpus-per-rank", "2", "rankprog", "cpus")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	var allowed string
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[2] == "Cpus_allowed_list:" {
			allowed = f[3]
		}
	}
	if cpus := strings.Count(allowed, ",") + 1 + strings.Count(allowed, "-"); allowed == "" || cpus < 2 {
		t.Errorf("rank bound to %q with --cpus-per-rank 2:\n%s", allowed, r.stdout)
	}
	r = mpirun(t, "-np", "1", "--cpus-per-rank", "2", "sh", "-c", "echo GOMAXPROCS=$GOMAXPROCS")
	if !strings.Contains(r.stdout, "GOMAXPROCS=2") {
		t.Errorf("GOMAXPROCS with --cpus-per-rank 2: %q %s", r.stdout, r.stderr)
	}
}

// TestMediumMeasured: with two ranks of a host on two cpus, the node agent
// measures how messages above the shared-memory eager limit move faster
// and gives every rank the same answer; -x overrides it; a job without
// shared memory, or of one rank, is not measured. On a busy machine (the
// suite's other packages run beside this one) the measure may give up:
// then neither rank is told, and mpirun -v says why.
func TestMediumMeasured(t *testing.T) {
	if runtimeCPUs() < 2 {
		proctest.Unavailable(t, "needs two cpus")
	}
	show := []string{"sh", "-c", "echo medium=$PARLEY_SHM_MEDIUM"}
	cases := []struct {
		name string
		args []string
		want []string // one line per rank
	}{
		{"measured", []string{"-v", "-np", "2"}, nil},
		{"overridden", []string{"-np", "2", "-x", "PARLEY_SHM_MEDIUM=chain"}, []string{"medium=chain", "medium=chain"}},
		{"tcp", []string{"-np", "2", "--transport", "tcp"}, []string{"medium=", "medium="}},
		{"one rank", []string{"-np", "1"}, []string{"medium="}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mpirun(t, append(tc.args, show...)...)
			if r.code != 0 {
				t.Fatal(r.stderr)
			}
			got := strings.Fields(r.stdout)
			slices.Sort(got)
			want := tc.want
			if want == nil {
				// Either answer, but the same for both ranks.
				busy := strings.Contains(r.stderr, "medium messages not measured") && strings.Contains(r.stderr, "a cpu of the measure is busy")
				if len(got) == 2 && got[0] == got[1] && (got[0] == "medium=read" || got[0] == "medium=chain" || got[0] == "medium=" && busy) {
					want = got
				} else {
					want = []string{"medium=read", "medium=read", "(or chain, alike)"}
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("ranks saw %q, want %q\n%s", got, want, r.stderr)
			}
		})
	}
}
