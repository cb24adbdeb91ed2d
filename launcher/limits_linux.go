//go:build linux && !parleyportable

package launcher

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Process limits. Before it starts a host's ranks, the agent checks that
// they fit what may still run here: the pids cgroup it runs in, the user's
// RLIMIT_NPROC (which counts threads, and which root is exempt from), and
// the kernel's threads-max and pid_max. A rank of a Go program runs several threads
// (GOMAXPROCS plus a few of the runtime's), a C program usually one. A job
// that does not fit is refused in one line, before anything starts: past
// the limit, fork and thread creation fail at random in mpirun and in the
// ranks (one such job aborted with 86,000 lines of goroutine dump).

// goRuntimeThreads is what a Go rank runs besides its GOMAXPROCS threads:
// sysmon, a thread for the netpoller, and threads in system calls, about.
const goRuntimeThreads = 4

// limit is one ceiling on the tasks that may still start here.
type limit struct {
	what  string // where it comes from, for the message
	avail int64
}

// taskLimits returns the ceilings that apply to this process, tightest
// first is not required: the caller takes the smallest.
func taskLimits() []limit {
	var out []limit
	if l, ok := pidsCgroupLimit(); ok {
		out = append(out, l)
	}
	if os.Geteuid() != 0 {
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NPROC, &rl) == nil && rl.Cur != unix.RLIM_INFINITY {
			used := userTasks(os.Getuid())
			out = append(out, limit{fmt.Sprintf("ulimit -u (RLIMIT_NPROC) %d, %d in use by this user", rl.Cur, used), int64(rl.Cur) - used})
		}
	}
	if total, err := systemTasks(); err == nil {
		// Every thread takes a pid: both kernel limits count tasks.
		for _, k := range []string{"threads-max", "pid_max"} {
			if max, err := readInt("/proc/sys/kernel/" + k); err == nil {
				out = append(out, limit{fmt.Sprintf("kernel.%s %d, %d tasks running", k, max, total), max - total})
			}
		}
	}
	return out
}

// pidsCgroupLimit reads the pids controller of this process's cgroup (v2,
// or v1's pids hierarchy): pids.max less pids.current.
func pidsCgroupLimit() (limit, bool) {
	dir := cgroupDir("pids")
	if dir == "" {
		return limit{}, false
	}
	raw, err := os.ReadFile(filepath.Join(dir, "pids.max"))
	if err != nil {
		return limit{}, false
	}
	s := strings.TrimSpace(string(raw))
	if s == "max" {
		return limit{}, false
	}
	max, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return limit{}, false
	}
	cur, err := readInt(filepath.Join(dir, "pids.current"))
	if err != nil {
		return limit{}, false
	}
	return limit{fmt.Sprintf("pids cgroup %s: pids.max %d, %d in use", dir, max, cur), max - cur}, true
}

// cgroupDir returns the directory of this process's cgroup for controller
// (v1), or its v2 cgroup if that has the controller; "" if none.
func cgroupDir(controller string) string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	var v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				if m := mountOf("cgroup", controller); m != "" {
					return filepath.Join(m, parts[2])
				}
			}
		}
	}
	if v2 != "" {
		if m := mountOf("cgroup2", ""); m != "" {
			d := filepath.Join(m, v2)
			if _, err := os.Stat(filepath.Join(d, controller+".max")); err == nil {
				return d
			}
		}
	}
	return ""
}

// mountOf finds where a cgroup file system of type fstype is mounted
// (with controller among its options, for v1).
func mountOf(fstype, controller string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, after := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(after) < 3 || after[0] != fstype {
			continue
		}
		if controller == "" {
			return fields[4]
		}
		for _, o := range strings.Split(after[2], ",") {
			if o == controller {
				return fields[4]
			}
		}
	}
	return ""
}

// userTasks counts the threads of processes whose real uid is uid (what
// RLIMIT_NPROC counts).
func userTasks(uid int) int64 {
	ents, _ := os.ReadDir("/proc")
	var n int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var ruid, threads int64 = -1, 0
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					ruid, _ = strconv.ParseInt(f[0], 10, 64)
				}
			}
			if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				threads, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		if ruid == int64(uid) {
			n += threads
		}
	}
	return n
}

// systemTasks returns the number of tasks on the system (the fourth field
// of /proc/loadavg, "running/total").
func systemTasks() (int64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0, fmt.Errorf("/proc/loadavg: %q", b)
	}
	_, total, ok := strings.Cut(f[3], "/")
	if !ok {
		return 0, fmt.Errorf("/proc/loadavg: %q", b)
	}
	return strconv.ParseInt(total, 10, 64)
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// isGoProgram reports whether the executable at path was built by Go (it
// has Go's build information section), whose ranks run several threads.
func isGoProgram(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Section(".go.buildinfo") != nil
}
