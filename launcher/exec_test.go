//go:build linux

package launcher

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecErrors: a rank that cannot be executed gets the status a shell
// gives (127 not found, 126 not runnable) and a message that says why; an
// environment too large for exec (E2BIG) was reported as 127, "not found".
func TestExecErrors(t *testing.T) {
	big := exec.Command("true")
	big.Env = []string{"BIG=" + strings.Repeat("x", 100<<10)}
	for range 30 {
		big.Env = append(big.Env, big.Env[0][:3]+string(rune('A'+len(big.Env)))+big.Env[0][3:])
	}
	dir := t.TempDir()
	noExec, garbage := filepath.Join(dir, "data"), filepath.Join(dir, "garbage")
	os.WriteFile(noExec, []byte("data\n"), 0o644)
	os.WriteFile(garbage, []byte{0, 1, 2, 3}, 0o755)
	cases := []struct {
		name string
		cmd  *exec.Cmd
		code int
		want string
	}{
		{"environment too large", big, 126, "exceed the system's limit (E2BIG)"},
		{"no such program", exec.Command("/nonexistent/prog"), 127, "no such file"},
		{"not executable", exec.Command(noExec), 126, "permission denied"},
		{"not a program", exec.Command(garbage), 126, "not a program this host can run"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.Start()
			if err == nil {
				tc.cmd.Wait()
				t.Fatal("exec succeeded")
			}
			got := execError(tc.cmd.Path, "host1", tc.cmd, err)
			var se *spawnError
			if !errors.As(got, &se) || se.code != tc.code || !strings.Contains(se.msg, tc.want) || !strings.Contains(se.msg, "host1") {
				t.Fatalf("exec error %v -> %v (code %d), want %d and %q", err, got, se.code, tc.code, tc.want)
			}
		})
	}
}
