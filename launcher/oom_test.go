//go:build linux

package launcher

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestOOMTrackerCgroup2 runs the tracker over a made-up cgroup v2 tree
// (this machine's memory controller is v1, which TestOOMKill in mpirun
// exercises for real): a rank in /job/step whose limit sits on /job.
func TestOOMTrackerCgroup2(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		p = filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/self/mountinfo", "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n")
	write("proc/42/cgroup", "0::/job/step\n")
	events := "low 0\nhigh 0\nmax 3\noom %d\noom_kill %d\n"
	write("sys/fs/cgroup/job/step/memory.events", fmt.Sprintf(events, 0, 0))
	write("sys/fs/cgroup/job/step/memory.max", "max\n")
	write("sys/fs/cgroup/job/memory.events", fmt.Sprintf(events, 0, 0))
	write("sys/fs/cgroup/job/memory.max", "2147483648\n")
	write("sys/fs/cgroup/memory.events", fmt.Sprintf(events, 0, 0))

	tr := &oomTracker{root: root}
	cgs := tr.watch(42)
	if len(cgs) != 3 {
		t.Fatalf("cgroups %v, want step, job and the root", cgs)
	}
	if ok, _ := tr.killed(cgs); ok {
		t.Fatal("an OOM kill seen with no counter changed (a kill -9)")
	}
	write("sys/fs/cgroup/job/step/memory.events", fmt.Sprintf(events, 1, 1))
	write("sys/fs/cgroup/job/memory.events", fmt.Sprintf(events, 1, 1))
	ok, why := tr.killed(cgs)
	if !ok || why != "cgroup limit 2.0 GiB" {
		t.Fatalf("killed = %v, %q; want the limit of /job", ok, why)
	}
	if ok, _ := tr.killed(cgs); ok {
		t.Fatal("one OOM kill counted for two deaths")
	}
	write("sys/fs/cgroup/job/memory.max", "max\n")
	write("sys/fs/cgroup/job/step/memory.events", fmt.Sprintf(events, 2, 2))
	if ok, why := tr.killed(cgs); !ok || why != "the host ran out of memory" {
		t.Fatalf("killed = %v, %q with no limit", ok, why)
	}
}

func TestRankFilesNames(t *testing.T) {
	for _, c := range []struct {
		size   int
		merged bool
		rank   int
		stream int
		want   string
	}{
		{1, false, 0, 2, "d/1/rank.0/stderr"},
		{10, false, 3, 1, "d/1/rank.3/stdout"},
		{11, false, 3, 2, "d/1/rank.03/stderr"},
		{101, true, 7, 2, "d/1/rank.007/stdout"},
	} {
		f, err := newRankFiles(filepath.Join(t.TempDir(), "x"), c.size, c.merged)
		if err != nil {
			t.Fatal(err)
		}
		f.dir = "d"
		if got := f.path(c.rank, c.stream); got != c.want {
			t.Errorf("size %d rank %d: %s, want %s", c.size, c.rank, got, c.want)
		}
	}
}
