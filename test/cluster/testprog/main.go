// Command testprog is the rank program of the multi-host tests: it reports
// where it runs, then does what its argument says.
//
//	testprog hello   print rank, size and host
//	testprog block   report, then wait for a message that never comes
//	testprog nofinalize  report, then exit 0 without comm.Finalize
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
		// Written whole, by a rename: the test polls for the file and
		// must not read it empty.
		path := filepath.Join(dir, fmt.Sprintf("rank%d", world.Rank()))
		if os.WriteFile(path+".tmp", []byte(host+" "+strconv.Itoa(os.Getpid())), 0o644) == nil {
			os.Rename(path+".tmp", path)
		}
	}
	fmt.Printf("rank %d of %d on %s\n", world.Rank(), world.Size(), host)
	if len(os.Args) > 1 && os.Args[1] == "block" {
		world.Recv(make([]byte, 1), comm.AnySource, 12345)
	}
	if len(os.Args) > 1 && os.Args[1] == "nofinalize" {
		os.Exit(0)
	}
	comm.Finalize()
}
