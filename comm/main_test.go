package comm_test

import (
	"os"
	"testing"

	"github.com/parley-hpc/parley/internal/proctest"
)

// TestMain runs the tests under proctest's hang watchdog, so that a hung
// test is named in the last line of the output.
func TestMain(m *testing.M) { os.Exit(proctest.Run(m)) }
