// Package comm is what a parley program links: it starts the runtime,
// gives the program its rank and the world, and moves tagged messages
// between ranks with MPI's point-to-point semantics.
//
//	world, err := comm.Init()
//	if err != nil { ... }
//	defer comm.Finalize()
//	if world.Rank() == 0 {
//		err = world.Send([]byte("hello"), 1, 7)
//	} else if world.Rank() == 1 {
//		buf := make([]byte, 64)
//		st, err := world.Recv(buf, comm.AnySource, comm.AnyTag)
//		fmt.Println(string(buf[:st.Count]), "from", st.Source)
//	}
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
// Requests: Isend and Irecv return a *Request that stays valid after Wait
// (Wait and Test may be called again). A loop that starts many small
// operations can hand completed requests back with Release, as MPI_Waitall
// frees them, and the runtime reuses them instead of allocating; a
// released request must not be used again. WaitallNoStatus waits without
// collecting statuses (MPI_STATUSES_IGNORE), which allocates nothing.
//
// Transports: ranks on one host (same PARLEY_NODE_ID) use shared memory;
// others use TCP. Connections are made on first use.
//
// Errors are *OpError values that wrap the sentinels in this package; test
// them with errors.Is (comm.ErrTruncated, comm.ErrPeerLost, ...).
package comm
