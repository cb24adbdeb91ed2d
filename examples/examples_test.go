package examples

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-hpc/parley/internal/proctest"
)

var bin string // directory with the built mpirun and examples

// TestMain builds mpirun and the examples once, as a user would, and runs
// them through the real mpirun.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	for _, p := range append([]string{"../mpirun", "./hello", "./ring"}, teaching...) {
		out := filepath.Join(dir, filepath.Base(p))
		cmd := exec.Command("go", "build", "-o", out, p)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", p, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := proctest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// teaching are the examples that check themselves against a serial run.
var teaching = []string{"./heat2d", "./samplesort", "./sgd", "./particles", "./pi", "./workers", "./pingpong", "./hybrid"}

// TestExamples runs every teaching example through mpirun at 1, 2, 3 and 4
// ranks (samplesort at 8 too), over shared memory and over TCP, at sizes
// that keep the suite short; each example compares its parallel answer
// with a serial run and exits non-zero at the first difference.
func TestExamples(t *testing.T) {
	args := map[string][]string{
		"heat2d":     {"-n", "37", "-tol", "1e-2"},
		"samplesort": {"-n", "3001"},
		"sgd":        {"-n", "301", "-epochs", "10"},
		"particles":  {"-n", "301", "-steps", "60"},
		"pi":         {"-n", "1000003"},
		"workers":    {"-w", "97", "-h", "61", "-iter", "200"},
		"pingpong":   {"-max", "300000", "-iters", "50"},
		"hybrid":     {"-n", "67", "-iters", "20", "-workers", "3"},
	}
	ok := map[string]string{
		"heat2d": "matches the serial run bit for bit", "samplesort": "every key kept", "sgd": "identical weights on every rank",
		"particles": "where the serial run puts it", "pi": "intervals on", "workers": "as the serial run computes it", "pingpong": "bytes",
		"hybrid": "matches the serial run bit for bit",
	}
	for _, ex := range teaching {
		name := filepath.Base(ex)
		for _, tr := range []string{"shm", "tcp"} {
			ranks := []int{1, 2, 3, 4}
			if name == "samplesort" {
				// 8 ranks: its Alltoall of counts takes Bruck's
				// algorithm there, and its Allgather recursive doubling.
				ranks = append(ranks, 8)
			}
			for _, n := range ranks {
				t.Run(fmt.Sprintf("%s/%s/%d", name, tr, n), func(t *testing.T) {
					flags := []string{"-np", fmt.Sprint(n), "--oversubscribe", "--timeout", "120"}
					if tr == "tcp" {
						flags = append(flags, "--transport", "tcp")
					}
					out := mpirun(t, append(append(flags, filepath.Join(bin, name)), args[name]...)...)
					want := ok[name]
					if name == "pingpong" && n < 2 {
						want = "needs two ranks"
					}
					if !strings.Contains(out, want) {
						t.Fatalf("output lacks %q:\n%s", want, out)
					}
				})
			}
		}
	}
}

func mpirun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "mpirun"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestHello(t *testing.T) {
	line := regexp.MustCompile(`(?m)^hello from rank (\d+) of (\d+) on (\S+) \(pid (\d+)\)$`)
	for _, n := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			out := mpirun(t, "-np", fmt.Sprint(n), filepath.Join(bin, "hello"))
			ms := line.FindAllStringSubmatch(out, -1)
			if len(ms) != n {
				t.Fatalf("%d hello lines, want %d:\n%s", len(ms), n, out)
			}
			seen := map[string]bool{}
			for _, m := range ms {
				if m[2] != fmt.Sprint(n) {
					t.Errorf("world size %s, want %d", m[2], n)
				}
				seen[m[1]] = true
			}
			if len(seen) != n {
				t.Errorf("ranks %v, want 0..%d", seen, n-1)
			}
		})
	}
}

func TestRing(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		for _, size := range []string{"64", "200000"} {
			t.Run(fmt.Sprintf("%d/%s", n, size), func(t *testing.T) {
				out := mpirun(t, "-np", fmt.Sprint(n), filepath.Join(bin, "ring"), "-laps", "4", "-size", size)
				if n > 1 && !strings.Contains(out, "checksum ok") {
					t.Fatalf("no checksum line:\n%s", out)
				}
			})
		}
	}
}

// TestPackageDirectory runs a Go package directory, which mpirun builds.
func TestPackageDirectory(t *testing.T) {
	out := mpirun(t, "-np", "2", "./hello")
	if strings.Count(out, "hello from rank") != 2 {
		t.Fatalf("package directory run:\n%s", out)
	}
}
