// Package linux holds the few Linux system calls the runtime needs beyond
// Go's standard library: futexes on shared memory, process_vm_readv for
// single-copy transfers, CPU affinity and sched_yield. Only this package
// and files ending in _linux.go import golang.org/x/sys/unix directly.
//
// On other systems every function returns an error that wraps
// ErrNotSupported, so callers pick their fallback with errors.Is.
package linux

import "errors"

// ErrNotSupported is wrapped by the errors of calls this system lacks or
// forbids (process_vm_readv under a restrictive ptrace policy, say).
var ErrNotSupported = errors.New("not supported")
