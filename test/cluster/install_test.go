package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-hpc/parley/internal/proctest"
)

const lmodInit = "/usr/share/lmod/lmod/init/bash"

// TestInstall installs parley with make install into a new prefix and
// uses it as a site would: a shell with a bare PATH loads the modulefile
// (the Tcl one and the Lua one, both read by Lmod, which Debian packages;
// environment-modules conflicts with it there, so its own modulecmd does
// not run here) and runs an installed example across two hosts; and an
// mpirun copied elsewhere, given --prefix, starts the remote agents from
// the prefix.
func TestInstall(t *testing.T) {
	needHosts(t)
	if _, err := os.Stat(lmodInit); err != nil {
		proctest.Unavailable(t, "Lmod not installed (apt-get install lmod)")
	}
	prefix := filepath.Join(t.TempDir(), "parley-9.9")
	make := exec.Command("make", "install", "PREFIX="+prefix, "BIN="+t.TempDir(), "VERSION=9.9")
	make.Dir = "../.."
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"bin/mpirun", "bin/bench", "bin/parley-hello", "bin/parley-heat2d", "share/modulefiles/parley/9.9", "share/lmod/modulefiles/parley/9.9.lua"} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	for _, dir := range []string{"share/modulefiles", "share/lmod/modulefiles"} {
		t.Run(dir, func(t *testing.T) {
			script := fmt.Sprintf(`source %s && module use %s && module load parley/9.9 && command -v mpirun && mpirun --version && mpirun -H host1:1,host2:1 parley-hello`,
				lmodInit, filepath.Join(prefix, dir))
			cmd := exec.Command("bash", "-c", script)
			cmd.Env = []string{"HOME=" + os.Getenv("HOME"), "PATH=/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			s := string(out)
			if err != nil || !strings.Contains(s, prefix+"/bin/mpirun\n") || !strings.Contains(s, "mpirun (parley) 9.9") ||
				!strings.Contains(s, "hello from rank 0 of 2 on host1") || !strings.Contains(s, "hello from rank 1 of 2 on host2") {
				t.Fatalf("%v\n%s", err, s)
			}
		})
	}
	t.Run("--prefix", func(t *testing.T) {
		elsewhere := filepath.Join(t.TempDir(), "mpirun")
		data, _ := os.ReadFile(filepath.Join(prefix, "bin/mpirun"))
		os.WriteFile(elsewhere, data, 0o755)
		agentOf := []string{"-H", "host1:1,host2:1", "sh", "-c", `readlink /proc/$PPID/exe`}
		for _, c := range []struct {
			flags []string
			want  string
		}{
			{nil, elsewhere},
			{[]string{"--prefix", prefix}, filepath.Join(prefix, "bin/mpirun")},
		} {
			out, err := exec.Command(elsewhere, append(c.flags, agentOf...)...).CombinedOutput()
			if err != nil || strings.Count(string(out), c.want+"\n") != 2 {
				t.Errorf("mpirun %v: the agents' executable should be %s:\n%v\n%s", c.flags, c.want, err, out)
			}
		}
	})
}
