package proctest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestHungTestsNamesTheRunningTest(t *testing.T) {
	dump := `goroutine 1 [chan receive]:
testing.(*T).Run(0xc000003a00, {0x5a1b2c, 0x9}, 0x5b0c10)
	/usr/local/go/src/testing/testing.go:2005 +0x485
main.main()
	_testmain.go:45 +0x9b

goroutine 7 [select, 19 minutes]:
github.com/x/y/comm.(*engine).wait(0xc0000a4000)
	/src/comm/engine.go:10 +0x10
github.com/x/y/comm.TestFinalizeWaits.func1(0xc000003a00)
	/src/comm/finalize_test.go:40 +0x20
github.com/x/y/comm.TestFinalizeWaits(0xc000003a00)
	/src/comm/finalize_test.go:30 +0x20
testing.tRunner(0xc000003a00, 0x5b0c10)
	/usr/local/go/src/testing/testing.go:1934 +0xea

goroutine 9 [IO wait]:
internal/poll.runtime_pollWait(0x7f, 0x72)
	/usr/local/go/src/runtime/netpoll.go:351 +0x85
`
	got := hungTests(dump)
	if len(got) != 1 || got[0].name != "TestFinalizeWaits" {
		t.Fatalf("hungTests = %+v, want one: TestFinalizeWaits", got)
	}
}

// TestWatchdogFiresBeforeTimeout runs this test binary with a short
// -test.timeout and a test that never ends: the watchdog must name it in
// the last lines of the output and exit 2 before go test's own panic.
func TestWatchdogFiresBeforeTimeout(t *testing.T) {
	if os.Getenv("PROCTEST_HANG") == "1" {
		select {}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdogFiresBeforeTimeout$", "-test.timeout=3s")
	cmd.Env = append(os.Environ(), "PROCTEST_HANG=1")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2; output:\n%s", err, out)
	}
	// go test's own timeout exits 2 as well, after its panic: which of the
	// two ended the run shows in the output, not in the time it took (a
	// loaded machine can start the binary late).
	if strings.Contains(string(out), "panic: test timed out") {
		t.Errorf("go test's timeout, not the watchdog, ended it:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "watchdog: tests still running after") || !strings.HasSuffix(last, ": TestWatchdogFiresBeforeTimeout") {
		t.Errorf("the last line does not name the hung test: %q", last)
	}
}

func TestMain(m *testing.M) { os.Exit(Run(m)) }
