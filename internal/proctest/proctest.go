// Package proctest helps tests that run real processes: it finds the
// processes of a job by a marker in their environment, waits for
// conditions with a deadline instead of sleeping, and decides what a test
// does when something it needs is missing (Unavailable).
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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

// Unavailable reports that something a test needs (a harness, a tool, an
// installed MPI) cannot be used here. Outside CI the test is skipped with
// the reason; under CI=true, where .ci/run has installed everything the
// suite needs, it fails: a tier of tests that silently did not run is not
// a pass.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		tb.Fatalf("%s (CI=true: a test that cannot run fails the run)", msg)
		return
	}
	tb.Skip(msg)
}

// InCI reports whether the tests run in CI (CI=true), where every tool
// and harness must be present.
func InCI() bool { return os.Getenv("CI") == "true" }
