package layers

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository's top directory.
const root = "../.."

// TestMakeTestRunsWhatShips: `make test`, what CI runs, tests the build
// users run (no race detector, cgo off, so the zero-allocation and
// fast paths execute) and then the race build, both with -count=1 (never
// a cached pass); and .ci/run sets CI=true, under which a harness or tool
// that cannot start fails the run instead of skipping.
func TestMakeTestRunsWhatShips(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "-C", root, "-n", "test").Output()
	if err != nil {
		t.Fatalf("make -n test: %v\n%s", err, mk)
	}
	var shipped, race bool
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, " test ") || !strings.Contains(line, "./...") {
			continue
		}
		if !strings.Contains(line, "-count=1") {
			t.Errorf("a test run without -count=1 may pass from the cache: %s", line)
		}
		if strings.Contains(line, "-race") {
			race = true
		} else if strings.Contains(line, "CGO_ENABLED=0") {
			shipped = true
		}
	}
	if !shipped || !race {
		t.Errorf("make test must run the suite as shipped (CGO_ENABLED=0, no -race) and with -race; it runs:\n%s", out)
	}
	ci, err := os.ReadFile(filepath.Join(root, ".ci/run"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^export CI=true\b`).Match(ci) {
		t.Error(".ci/run does not export CI=true")
	}
}

// TestNoBinariesTracked: no compiled program is committed (a 6.8 MB test
// binary once was).
func TestNoBinariesTracked(t *testing.T) {
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b := make([]byte, 4)
		fh, err := os.Open(filepath.Join(root, f))
		if err != nil {
			continue
		}
		n, _ := fh.Read(b)
		fh.Close()
		if n == 4 && bytes.Equal(b, []byte("\x7fELF")) {
			t.Errorf("%s is a compiled program: build outputs are not committed", f)
		}
	}
}

// TestGoModTidy: go.mod says what the module imports (a dependency imported
// directly was marked indirect).
func TestGoModTidy(t *testing.T) {
	cmd := exec.Command("go", "mod", "tidy", "-diff")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go mod tidy -diff: %v\n%s", err, out)
	}
}

// TestCrossCompile: everything builds, and what a program links vets, for
// the platforms users write and test on, not only linux/amd64 (a 1<<62
// constant once broke 32-bit builds; shm and tcp once left darwin and
// windows without a build). Off Linux a program runs as a world of one,
// and mpirun says where ranks run.
func TestCrossCompile(t *testing.T) {
	targets := []string{"darwin/arm64", "darwin/amd64", "windows/amd64", "linux/386", "linux/arm64"}
	for _, target := range targets {
		t.Run(strings.ReplaceAll(target, "/", "-"), func(t *testing.T) {
			goos, goarch, _ := strings.Cut(target, "/")
			env := append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
			for _, args := range [][]string{
				{"build", "./..."},
				{"vet", "./comm/...", "./collectives/...", "./examples/..."},
			} {
				cmd := exec.Command("go", args...)
				cmd.Dir, cmd.Env = root, env
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("GOOS=%s GOARCH=%s go %s: %v\n%s", goos, goarch, strings.Join(args, " "), err, out)
				}
			}
		})
	}
}

// TestPortableBuild runs, on Linux, what other systems run: the
// parleyportable tag selects the files that stand in for Linux's (no
// shared memory, no TCP transport), and a program runs as a world of one.
func TestPortableBuild(t *testing.T) {
	cmd := exec.Command("go", "test", "-count=1", "-tags", "parleyportable", "-run", "WorldOfOne|Example", "./comm", "./collectives")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -tags parleyportable: %v\n%s", err, out)
	}
}
