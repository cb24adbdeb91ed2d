// Package comm is what a parley program links: it starts the runtime,
// gives the program its rank and the world, and moves tagged messages
// between ranks with MPI's point-to-point semantics. A program calls Init
// first and Finalize last; the Example functions (go doc -all, and go
// test runs them) show the rest: Comm.Send for a message between ranks,
// Send for structs, Comm.CartCreate for a grid of ranks.
//
// Semantics (as MPI): a receive matches on source (or AnySource) and tag
// (or AnyTag); messages from one sender on one communicator are received
// in the order sent; messages nobody waits for yet are kept until a
// receive matches them; a message longer than the receive buffer is an
// error (ErrTruncated), never cut silently. Communicators made with Dup
// and Split have contexts of their own, so their messages never cross.
//
// Progress: a rank blocked in Recv or Wait polls its transports itself:
// it spins for a while, then yields the CPU between polls, then sleeps
// until a transport rings its bell. Nothing moves in the background while
// no goroutine of the rank is inside the runtime, except what the kernel
// buffers for TCP.
//
// Requests: Isend and Irecv return a *Request of the program's own, valid
// for as long as it holds it (Wait and Test may be called again and report
// the same). The runtime never gives a request to another operation:
// Release only says the program is done with it (any later use fails with
// ErrReleased). A loop that repeats the same operations uses persistent
// requests (SendInit, RecvInit, Start), which allocate nothing per
// iteration; WaitallNoStatus waits without collecting statuses
// (MPI_STATUSES_IGNORE). Waitany and Waitsome set the entries they report
// to nil, as MPI sets them to MPI_REQUEST_NULL.
//
// Blocked goroutines: every goroutine blocked in the runtime for more
// than a few microseconds (in Recv, Send, Probe, Wait, Waitany, Waitsome,
// a collective) records what it waits for; mpirun's hang report (--timeout,
// or Ctrl-C on a job that has run a while) prints those records for every
// rank, with the messages that arrived and match no receive.
//
// Typed messages: Send, Recv, Isend, Irecv, Sendrecv, SendInit and
// RecvInit take slices of any fixed-size type without pointers (numbers,
// bool, arrays and structs of them), sent as their bytes without a copy;
// counts are elements. A type with a pointer is refused, naming the field.
//
// Grids: CartCreate lays ranks out on a Cartesian grid (DimsCreate picks
// balanced dimensions); Cart.Shift names the neighbours of a halo
// exchange, ProcNull past an open edge, where sends and receives complete
// at once. SplitType(TypeShared, key) groups the ranks of each host.
//
// Cancellation: RecvContext, SendContext and Request.WaitContext bound a
// wait by a context.Context; what was not matched yet is withdrawn.
//
// Transports: ranks on one host (same PARLEY_NODE_ID) use shared memory;
// others use TCP. Connections are made on first use. Shared memory and
// TCP are Linux's: elsewhere a program builds and runs as a world of one.
//
// Errors are *OpError values that wrap the sentinels in this package; test
// them with errors.Is (comm.ErrTruncated, comm.ErrPeerLost, ...).
package comm
