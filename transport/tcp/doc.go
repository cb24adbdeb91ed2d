// Package tcp moves frames between ranks over TCP, one connection per pair
// of ranks, made lazily on first use.
//
// Fast path: the rank's own progress loop reads and writes the sockets
// with non-blocking system calls (Poll), so a rank blocked in a receive
// busy-polls its socket instead of waiting for Go's netpoller to wake a
// goroutine (tens of microseconds on an idle machine). When the rank has
// nothing to do and goes to sleep, one watcher goroutine per rank waits in
// epoll for any of its sockets and rings the rank's Bell.
//
// Connections: every connection starts with the job-secret handshake of
// internal/wire, in which the dialer names its rank. When two ranks dial
// each other at once, the connection dialed by the lower rank wins: the
// acceptor answers the other with a "duplicate" verdict before any frame
// flows, so no frame is ever sent on a connection that is then dropped.
//
// Framing: each frame is a wire.Header followed by Len payload bytes.
// Payloads of frames with FlagDirect are read straight into the buffer the
// Handler names; others are read into a per-connection buffer and handed
// to Deliver from there. Writes gather headers and payloads of queued
// frames into one writev.
//
// No socket buffer sizes are fixed: the kernel's autotuning does better
// than any constant (a fixed 128 KiB capped one MPI at 556 MB/s on 10 GbE).
package tcp
