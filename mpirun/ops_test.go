//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-hpc/parley/internal/proctest"
	"github.com/parley-hpc/parley/launcher"
)

// memoryCgroup makes a memory cgroup with the given limit (v1's memory
// hierarchy, or v2's where the memory controller is enabled) and returns
// its directory.
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	needRoot(t)
	name := fmt.Sprintf("parley-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	var cg, limitFile string
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		cg, limitFile = filepath.Join("/sys/fs/cgroup/memory", name), "memory.limit_in_bytes"
	} else {
		root := "/sys/fs/cgroup"
		if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
			root = "/sys/fs/cgroup/unified"
		}
		b, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
		if !strings.Contains(string(b), "memory") {
			proctest.Unavailable(t, "no memory cgroup controller here (v1 memory hierarchy, or memory in %s/cgroup.subtree_control)", root)
		}
		cg, limitFile = filepath.Join(root, name), "memory.max"
	}
	if err := os.Mkdir(cg, 0o755); err != nil {
		proctest.Unavailable(t, "cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		// The cgroup can go once its processes have.
		proctest.Eventually(5*time.Second, func() bool { return os.Remove(cg) == nil })
	})
	if err := os.WriteFile(filepath.Join(cg, limitFile), []byte(fmt.Sprint(limit)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cg
}

// TestOOMKill: a rank killed by the kernel's out-of-memory killer is named
// as such, with the limit, where it used to read "killed by signal 9"
// like any kill -9; a plain kill -9 in the same cgroup still reads as a
// signal.
func TestOOMKill(t *testing.T) {
	cg := memoryCgroup(t, 192<<20)
	run := func(args ...string) (int, string) {
		mark := fmt.Sprintf("oom-%d", time.Now().UnixNano())
		script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec mpirun -x %s=%s "$@"`, cg, proctest.MarkerVar, mark)
		cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if !proctest.Eventually(3*time.Second, func() bool { return len(proctest.WithMarker(mark)) == 0 }) {
			t.Errorf("processes of the job left: %v", proctest.WithMarker(mark))
		}
		return code, string(out)
	}
	code, out := run("-np", "2", "--oversubscribe", "rankprog", "alloc", "1", "2048")
	want := regexp.MustCompile(`(?m)^mpirun: rank 1 \(pid \d+ on \S+\) was killed by the kernel's out-of-memory killer \(cgroup limit 192 MiB\); stopping the other rank$`)
	if code != 137 || !want.MatchString(out) {
		t.Fatalf("exit status %d, want 137 and a line matching %s:\n%s", code, want, out)
	}
	t.Log(out)
	code, out = run("-np", "2", "--oversubscribe", "rankprog", "kill", "1")
	if code != 137 || !strings.Contains(out, "was killed by signal 9 (killed)") || strings.Contains(out, "out-of-memory") {
		t.Fatalf("kill -9 in the same cgroup: exit status %d:\n%s", code, out)
	}
}

// TestOutputFiles: --output-filename writes each rank's stdout and
// stderr to DIR/1/rank.N/ (Open MPI's layout), copies them to mpirun's
// own streams unless :nocopy, puts both in stdout with
// --merge-stderr-to-stdout, and the failure line names the failed rank's
// file, which holds what it wrote before it failed.
func TestOutputFiles(t *testing.T) {
	type file struct {
		path string
		want []string // lines, in order
	}
	cases := []struct {
		name     string
		flags    []string // {DIR} is replaced by the directory
		args     []string
		code     int
		files    []file
		absent   []string
		console  []string // in mpirun's stdout+stderr
		notOnCon []string
	}{{
		name:  "files and a copy",
		flags: []string{"--output-filename", "{DIR}"}, args: []string{"talk", "0", "0"},
		files: []file{
			{"1/rank.0/stdout", []string{"out from rank 0", "more out from rank 0"}},
			{"1/rank.0/stderr", []string{"err from rank 0"}},
			{"1/rank.2/stdout", []string{"out from rank 2", "more out from rank 2"}},
			{"1/rank.2/stderr", []string{"err from rank 2"}},
		},
		console: []string{"out from rank 1", "err from rank 2"},
	}, {
		name:  "nocopy",
		flags: []string{"--output-filename", "{DIR}:nocopy"}, args: []string{"talk", "0", "0"},
		files:    []file{{"1/rank.1/stdout", []string{"out from rank 1", "more out from rank 1"}}},
		notOnCon: []string{"from rank"},
	}, {
		name:  "merged",
		flags: []string{"--output-filename", "{DIR}:nocopy", "--merge-stderr-to-stdout"}, args: []string{"talk", "0", "0"},
		files:  []file{{"1/rank.1/stdout", []string{"out from rank 1", "err from rank 1", "more out from rank 1"}}},
		absent: []string{"1/rank.1/stderr"},
	}, {
		name:  "a rank fails",
		flags: []string{"--output-filename", "{DIR}"}, args: []string{"talk", "1", "3"}, code: 3,
		files:   []file{{"1/rank.1/stderr", []string{"err from rank 1"}}},
		console: []string{"exited with status 3 (see {DIR}/1/rank.1/stderr); stopping the other 2 ranks"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			sub := func(s string) string { return strings.ReplaceAll(s, "{DIR}", dir) }
			var args []string
			for _, f := range c.flags {
				args = append(args, sub(f))
			}
			r := mpirun(t, append(append(args, "-np", "3", "--oversubscribe", "rankprog"), c.args...)...)
			con := r.stdout + r.stderr
			if r.code != c.code {
				t.Fatalf("exit status %d, want %d:\n%s", r.code, c.code, con)
			}
			for _, f := range c.files {
				b, err := os.ReadFile(filepath.Join(dir, f.path))
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Split(strings.TrimSpace(string(b)), "\n"); !slices.Equal(got, f.want) {
					t.Errorf("%s: %q, want %q", f.path, got, f.want)
				}
			}
			for _, p := range c.absent {
				if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
					t.Errorf("%s exists", p)
				}
			}
			for _, s := range c.console {
				if !strings.Contains(con, sub(s)) {
					t.Errorf("mpirun's output lacks %q:\n%s", sub(s), con)
				}
			}
			for _, s := range c.notOnCon {
				if strings.Contains(con, s) {
					t.Errorf("mpirun's output has %q:\n%s", s, con)
				}
			}
		})
	}
	t.Run("misuse", func(t *testing.T) {
		blocked := filepath.Join(t.TempDir(), "file")
		os.WriteFile(blocked, nil, 0o644)
		for _, m := range []struct {
			flag, want string
			code       int
		}{
			{"out:nocpy", `unknown modifier "nocpy"`, 2},
			{":nocopy", "no directory", 2},
			{blocked, "--output-filename: mkdir " + blocked + ": not a directory", 1},
		} {
			r := mpirun(t, "--output-filename", m.flag, "-np", "1", "rankprog", "hello")
			if r.code != m.code || !strings.Contains(r.stderr, m.want) {
				t.Errorf("--output-filename %s: exit status %d, want %d and %q:\n%s", m.flag, r.code, m.code, m.want, r.stderr)
			}
		}
	})
}

// TestInfo: mpirun --info reports what this host offers and where ranks
// would run, as text and as JSON, and each probe reflects the host: a
// full /dev/shm makes shm unusable with the reason, launcher variables in
// the environment are named, -np and --bind-to change the binding, and
// the cma line says how messages above the eager limit move here.
func TestInfo(t *testing.T) {
	info := func(env []string, args ...string) (Info, string) {
		cmd := exec.Command("mpirun", append([]string{"--info", "--json"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("mpirun --info --json %v: %v\n%s", args, err, out)
		}
		var in Info
		if err := json.Unmarshal(out, &in); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		return in, string(out)
	}
	capability := func(in Info, name string) launcher.Capability {
		for _, c := range append(in.Transports, in.Launchers...) {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("no %s in the report", name)
		return launcher.Capability{}
	}
	in, raw := info(nil, "-np", "2")
	if in.Go != runtime.Version() || in.Ranks != 2 || len(in.Binding) != 2 || !strings.Contains(in.Topology, "cores") {
		t.Errorf("report:\n%s", raw)
	}
	for _, name := range []string{"shm", "tcp", "cma", "local", "ssh", "slurm"} {
		if c := capability(in, name); !c.InBuild {
			t.Errorf("%s not in build: %+v", name, c)
		}
	}
	if c := capability(in, "shm"); !c.Usable {
		t.Errorf("shm unusable here: %s", c.Detail)
	}
	if c := capability(in, "cma"); c.Usable && runtimeCPUs() >= 2 &&
		!strings.Contains(c.Detail, "eager limit: single copy (chains ") && !strings.Contains(c.Detail, "chain limit: chains (chains ") &&
		!strings.Contains(c.Detail, "a cpu of the measure is busy") { // the suite's other packages may keep both cpus busy
		t.Errorf("cma does not say how medium messages move: %s", c.Detail)
	}
	if c := capability(in, "verbs"); c.InBuild || c.Usable {
		t.Errorf("verbs: %+v", c)
	}
	in, _ = info(nil, "-np", "1", "--bind-to", "none")
	if len(in.Binding) != 1 || !strings.Contains(in.Binding[0], "not bound") {
		t.Errorf("--bind-to none: %q", in.Binding)
	}
	in, _ = info([]string{"PARLEY_SHM=off", "SLURM_JOB_ID=7", "OMPI_COMM_WORLD_RANK=0"})
	if c := capability(in, "shm"); c.Usable || !strings.Contains(c.Detail, "PARLEY_SHM=off") {
		t.Errorf("PARLEY_SHM=off: %+v", c)
	}
	env := strings.Join(in.Environment, "; ")
	if !strings.Contains(env, "SLURM_* (Slurm)") || !strings.Contains(env, "OMPI_* (Open MPI)") {
		t.Errorf("environment: %q", in.Environment)
	}
	out, err := exec.Command("mpirun", "--info").CombinedOutput()
	for _, want := range []string{"parley ", "transports:", "launchers:", "binding of "} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("--info text lacks %q (%v):\n%s", want, err, out)
		}
	}
	for _, args := range [][]string{{"--json"}, {"--info", "rankprog"}} {
		if r := mpirun(t, args...); r.code != 2 {
			t.Errorf("mpirun %v: exit status %d\n%s", args, r.code, r.stderr)
		}
	}
	t.Run("full /dev/shm", func(t *testing.T) {
		needRoot(t)
		r := inShmNamespace(t, "size=64k", "", "--info")
		if !regexp.MustCompile(`(?m)^  shm +unusable +/dev/shm: .*fall back to TCP$`).MatchString(r.stdout) {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

type Info = launcher.Info
