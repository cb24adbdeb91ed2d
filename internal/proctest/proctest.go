// Package proctest helps tests that run real processes: it finds the
// processes of a job by a marker in their environment, and waits for
// conditions with a deadline instead of sleeping.
package proctest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MarkerVar is the environment variable tests set (with mpirun -x) to
// recognize the processes of one job.
const MarkerVar = "PARLEY_TEST_MARK"

// WithMarker returns the pids of live processes whose environment holds
// MarkerVar=mark. Zombies are not counted: they have exited.
func WithMarker(mark string) []int {
	want := []byte(MarkerVar + "=" + mark + "\x00")
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) {
			continue
		}
		if state(pid) == "Z" {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func state(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// Eventually polls cond every 10 ms until it holds or d passes, and
// reports whether it held.
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
