package proctest

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// Runner is what TestMain runs: *testing.M, or a wrapper of it.
type Runner interface{ Run() int }

// Run runs the tests of m like m.Run, with a watchdog for hangs: shortly
// before go test's -timeout would panic, it prints every goroutine's
// stack, then the stacks of the tests still running and, last, a line
// that names them, and exits with status 2. go test's own timeout panic
// names the hung tests first and thousands of stack lines after them; a
// CI log that keeps only its tail loses the one line that matters.
// Printed last, it survives.
func Run(m Runner) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	if d := testTimeout(); d > 0 {
		margin := min(30*time.Second, d/10)
		t := time.AfterFunc(d-margin, func() { reportHang(d - margin) })
		defer t.Stop()
	}
	return m.Run()
}

// Watched wraps m so that its Run is Run(m): for a TestMain that hands m
// to another runner (testscript.RunMain).
func Watched(m Runner) Runner { return watched{m} }

type watched struct{ m Runner }

func (w watched) Run() int { return Run(w.m) }

func testTimeout() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0
	}
	d, err := time.ParseDuration(f.Value.String())
	if err != nil {
		return 0
	}
	return d
}

// testFrame matches a frame of a test function (or a closure in one):
// "github.com/x/y/pkg.TestName(" or "pkg.TestName.func2(".
var testFrame = regexp.MustCompile(`(?m)^\S+\.(Test\w+)(?:\.\S+)?\(`)

func reportHang(after time.Duration) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	os.Stderr.Write(buf)
	hung := hungTests(string(buf))
	var names []string
	fmt.Fprintln(os.Stderr, "\nwatchdog: the goroutines of the tests still running:")
	for _, g := range hung {
		fmt.Fprintf(os.Stderr, "--- %s\n%s\n", g.name, g.stack)
		names = append(names, g.name)
	}
	fmt.Fprintf(os.Stderr, "watchdog: tests still running after %v: %s\n", after.Round(time.Second), strings.Join(names, ", "))
	os.Exit(2)
}

type hungTest struct{ name, stack string }

// hungTests picks, out of a full stack dump, the goroutines that run a
// test (testing.tRunner at their base) and names the innermost test
// function in each.
func hungTests(dump string) []hungTest {
	var out []hungTest
	for _, g := range strings.Split(dump, "\n\n") {
		if !strings.Contains(g, "testing.tRunner(") {
			continue
		}
		for _, m := range testFrame.FindAllStringSubmatch(g, -1) {
			if m[1] != "TestMain" { // the main goroutine, waiting in m.Run
				out = append(out, hungTest{name: m[1], stack: g})
				break
			}
		}
	}
	return out
}
