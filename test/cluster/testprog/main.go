// Command testprog is the rank program of the multi-host tests: it reports
// where it runs, then does what its argument says.
//
//	testprog hello   print rank, size and host
//	testprog block   report, then wait for a message that never comes
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/parley-hpc/parley/comm"
)

func main() {
	world, err := comm.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testprog:", err)
		os.Exit(1)
	}
	host, _ := os.Hostname()
	if dir := os.Getenv("TESTPROG_DIR"); dir != "" {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("rank%d", world.Rank())),
			[]byte(host+" "+strconv.Itoa(os.Getpid())), 0o644)
	}
	fmt.Printf("rank %d of %d on %s\n", world.Rank(), world.Size(), host)
	if len(os.Args) > 1 && os.Args[1] == "block" {
		world.Recv(make([]byte, 1), comm.AnySource, 12345)
	}
	comm.Finalize()
}
