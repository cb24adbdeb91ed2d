package launcher

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// A rank killed by the kernel's out-of-memory killer dies of SIGKILL, the
// same as one killed with kill -9. What tells them apart is the OOM kill
// counter of the rank's memory cgroup (cgroup v1: "oom_kill" in
// memory.oom_control; v2: "oom_kill" in memory.events), which the kernel
// increments in the victim's cgroup whether a cgroup limit or the whole
// host ran out. The agent records the rank's cgroups (its own and their
// ancestors, where a limit may sit) when the rank starts, and after a
// death by SIGKILL looks for an increment nobody has claimed yet.

// oomTracker remembers the counters of the cgroups this agent's ranks are
// in, so that one OOM kill is attributed to one death: the first rank
// found dead of SIGKILL in that cgroup after the increment.
type oomTracker struct {
	mu   sync.Mutex
	seen map[string]int64 // counter file -> the value already accounted for
	root string           // "" or a directory standing in for /, for tests
}

// memCgroup is one memory cgroup directory and the files that matter.
type memCgroup struct {
	counter string // memory.oom_control (v1) or memory.events (v2)
	limit   string // memory.limit_in_bytes (v1) or memory.max (v2)
}

// rankCgroups are the memory cgroups of one rank, innermost first.
type rankCgroups []memCgroup

// watch records the memory cgroups of process pid and their counters.
func (t *oomTracker) watch(pid int) rankCgroups {
	cgs := t.cgroupsOf(pid)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen = map[string]int64{}
	}
	for _, cg := range cgs {
		if _, ok := t.seen[cg.counter]; !ok {
			if n, ok := readOOMKills(cg.counter); ok {
				t.seen[cg.counter] = n
			}
		}
	}
	return cgs
}

// killed says whether a rank that died of SIGKILL was the OOM killer's
// victim, and if so describes the limit it hit: "cgroup limit 2.0 GiB"
// or "the host ran out of memory".
func (t *oomTracker) killed(cgs rankCgroups) (bool, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	hit := false
	for _, cg := range cgs {
		n, ok := readOOMKills(cg.counter)
		if !ok {
			continue
		}
		if n > t.seen[cg.counter] {
			t.seen[cg.counter] = n // claimed by this death
			hit = true
		}
	}
	if !hit {
		return false, ""
	}
	// The limit that applies is the smallest one on the path to the root.
	var limit int64 = -1
	for _, cg := range cgs {
		if l, ok := readMemLimit(cg.limit); ok && (limit < 0 || l < limit) {
			limit = l
		}
	}
	if limit < 0 {
		return true, "the host ran out of memory"
	}
	return true, "cgroup limit " + formatBytes(limit)
}

// cgroupsOf finds the memory cgroups of pid: for each line of
// /proc/PID/cgroup naming the memory controller (v1) or the unified
// hierarchy (v2), the directory under that hierarchy's mount point and
// its ancestors up to the mount point.
func (t *oomTracker) cgroupsOf(pid int) rankCgroups {
	data, err := os.ReadFile(filepath.Join(t.root, "/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil
	}
	mounts := t.cgroupMounts()
	var out rankCgroups
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var m cgroupMount
		var ok bool
		var cg memCgroup
		switch {
		case parts[0] == "0" && parts[1] == "":
			m, ok = mounts["cgroup2"]
			cg = memCgroup{counter: "memory.events", limit: "memory.max"}
		case hasController(parts[1], "memory"):
			m, ok = mounts["memory"]
			cg = memCgroup{counter: "memory.oom_control", limit: "memory.limit_in_bytes"}
		}
		if !ok {
			continue
		}
		rel, found := strings.CutPrefix(parts[2], m.root)
		if !found {
			continue // a cgroup outside what this mount shows
		}
		dir := filepath.Join(t.root, m.point, rel)
		top := filepath.Join(t.root, m.point)
		for {
			c := memCgroup{counter: filepath.Join(dir, cg.counter), limit: filepath.Join(dir, cg.limit)}
			if _, err := os.Stat(c.counter); err == nil {
				out = append(out, c)
			}
			if dir == top || len(dir) <= len(top) {
				break
			}
			dir = filepath.Dir(dir)
		}
	}
	return out
}

type cgroupMount struct{ point, root string }

// cgroupMounts reads /proc/self/mountinfo for the v1 memory hierarchy
// ("memory") and the v2 one ("cgroup2").
func (t *oomTracker) cgroupMounts() map[string]cgroupMount {
	f, err := os.Open(filepath.Join(t.root, "/proc/self/mountinfo"))
	if err != nil {
		return nil
	}
	defer f.Close()
	mounts := map[string]cgroupMount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 0:30 /root /mnt/point rw,nosuid - cgroup cgroup rw,memory
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 > len(fields) {
			continue
		}
		m := cgroupMount{point: unescapeMount(fields[4]), root: unescapeMount(fields[3])}
		if m.root == "/" {
			m.root = ""
		}
		switch fields[sep+1] {
		case "cgroup2":
			if _, ok := mounts["cgroup2"]; !ok {
				mounts["cgroup2"] = m
			}
		case "cgroup":
			if hasController(fields[sep+3], "memory") {
				if _, ok := mounts["memory"]; !ok {
					mounts["memory"] = m
				}
			}
		}
	}
	return mounts
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// readOOMKills reads the "oom_kill N" line of a counter file.
func readOOMKills(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// readMemLimit reads a cgroup's memory limit; false when there is none
// ("max", or v1's page-rounded maximum).
func readMemLimit(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(data))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n >= 1<<62 {
		return 0, false
	}
	return n, true
}

// formatBytes prints a size as people read limits: "512 MiB", "2.0 GiB".
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
