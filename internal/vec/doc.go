// Package vec holds the element-wise kernels the reductions spend their
// time in, vectorized where the Go compiler does not: it compiles
// `d[i] += s[i]` to one scalar add per element, while AVX adds eight
// float32 at a time (`bench limits` on a 2-vCPU AMD EPYC VM, 1 MiB of
// float32 in cache: 7.4 GB/s for the loop, 49.6 GB/s for the kernel).
// Each kernel gives bit for bit the result of the plain loop (one IEEE
// addition per element, in the same order: no fused or reassociated
// arithmetic), so collectives stay reproducible whichever path runs.
// Without AVX (another architecture, an old CPU, or an OS that does not
// save the vector registers) the plain loop runs.
package vec
