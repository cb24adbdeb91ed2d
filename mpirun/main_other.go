//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

// Ranks run on Linux (shared memory, process binding, the node agent).
// Elsewhere mpirun says so: programs that link comm build and run here as
// a world of one, for editing and testing.
func main() {
	fmt.Fprintf(os.Stderr, "mpirun: parley runs ranks on Linux only (this is %s/%s); a program run without mpirun here is a world of one\n",
		runtime.GOOS, runtime.GOARCH)
	os.Exit(1)
}
