package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
	"unsafe"

	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/internal/vec"
)

// runLimits is "bench limits": the physical limits the on-node cells run
// into, measured in one process: memcpy (Go's copy), the single-copy read
// between processes (process_vm_readv, here of this process's own memory:
// the same kernel path of pinning and copying pages), and the float32 sum
// kernel the reductions use, vectorized and as a plain loop. Each is the
// median of repeated passes over buffers of the given size.
func runLimits(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench limits", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reps := fs.Int("reps", 50, "passes per size")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *reps < 1 {
		fmt.Fprintf(stderr, "bench limits: -reps %d: at least 1\n", *reps)
		return 2
	}
	fmt.Fprintf(stdout, "# on-node limits, medians of %d passes (GB/s = 10^9 bytes/s)\n", *reps)
	fmt.Fprintf(stdout, "%-10s %12s %12s %18s %14s %14s\n", "# Size", "copy", "vec.Copy", "process_vm_readv", "sum (vec)", "sum (loop)")
	for _, size := range []int{64 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20} {
		src, dst := make([]byte, size), make([]byte, size)
		for i := range src {
			src[i] = byte(i)
		}
		f32 := func(b []byte) []float32 { return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4) }
		d, s := f32(dst), f32(src)
		cp := medianOf(*reps, func() { copy(dst, src) })
		vcp := medianOf(*reps, func() { vec.Copy(dst, src) })
		var readErr error
		cma := medianOf(*reps, func() {
			if err := linux.ReadRemote(dst, os.Getpid(), uintptr(unsafe.Pointer(&src[0]))); err != nil {
				readErr = err
			}
		})
		sv := medianOf(*reps, func() { vec.AddFloat32(d, s) })
		sl := medianOf(*reps, func() {
			for i := range d {
				d[i] += s[i]
			}
		})
		gbs := func(t time.Duration) string { return fmt.Sprintf("%.1f", float64(size)/t.Seconds()/1e9) }
		cmaCell := gbs(cma)
		if readErr != nil {
			cmaCell = "refused"
		}
		fmt.Fprintf(stdout, "%-10d %12s %12s %18s %14s %14s\n", size, gbs(cp), gbs(vcp), cmaCell, gbs(sv), gbs(sl))
	}
	return 0
}

func medianOf(reps int, f func()) time.Duration {
	ts := make([]time.Duration, reps)
	f() // warm: pages touched, caches filled
	for i := range ts {
		t0 := time.Now()
		f()
		ts[i] = time.Since(t0)
	}
	slices.Sort(ts)
	return ts[len(ts)/2]
}
