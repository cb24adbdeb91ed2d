// Package transporttest is the conformance suite every transport passes:
// per-link order, every size from 0 B to 64 MiB intact, many links at
// once, the sender's rank taken from the link rather than the frame, remote
// reads of exposed buffers (and refusal of descriptors never given), a
// peer that disappears mid-stream reported as an error naming it, and
// Close while others poll. The shm, tcp and verbs packages run it from
// their tests with a Factory that makes n transports of one job.
package transporttest
