package proctest

import (
	"testing"
)

// recorder is a testing.TB that records how a test ended.
type recorder struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.failed = true }
func (r *recorder) Skip(args ...any)                  { r.skipped = true }
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = true }
func (r *recorder) Errorf(format string, args ...any) { r.failed = true }
func (r *recorder) Logf(format string, args ...any)   {}

// TestUnavailable: a missing harness or tool skips the test on a
// developer's machine and fails it under CI=true, where .ci/run installed
// everything (whole tiers once skipped in CI and it stayed green).
func TestUnavailable(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		Unavailable(r, "no %s here", "slurmctld")
		if ci == "true" && (!r.failed || r.skipped) {
			t.Errorf("CI=true: Unavailable skipped (failed=%v), want a failure", r.failed)
		}
		if ci == "" && (r.failed || !r.skipped) {
			t.Errorf("outside CI: Unavailable failed=%v skipped=%v, want a skip", r.failed, r.skipped)
		}
	}
}
