//go:build linux && !parleyportable

package linux

import (
	"errors"
	"runtime"
	"testing"
)

// TestAllowPeers: under Yama's scope 1 a rank grants its user's processes
// (PR_SET_PTRACER_ANY); under 0 nothing is needed; under 2 and 3 single
// copy is off, with ErrNotSupported. (Yama is not in every kernel: this
// checks the decision on each scope's text.)
func TestAllowPeers(t *testing.T) {
	for _, tc := range []struct {
		scope   string
		granted bool
		err     bool
	}{{"0\n", false, false}, {"1\n", true, false}, {"2\n", false, true}, {"3\n", false, true}} {
		granted := false
		_, err := allowPeers(tc.scope, func() error { granted = true; return nil })
		if granted != tc.granted || (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrNotSupported)) {
			t.Errorf("scope %q: granted %v, err %v", tc.scope, granted, err)
		}
	}
}

func TestOnlineCPUs(t *testing.T) {
	if n := OnlineCPUs(); n < runtime.NumCPU() {
		t.Errorf("OnlineCPUs() = %d, fewer than the %d this process may use", n, runtime.NumCPU())
	}
}
