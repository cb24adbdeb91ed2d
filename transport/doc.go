// Package transport defines how bytes move between two ranks, and nothing
// of what they mean: the frame Header's fields other than Len and Flags are
// opaque numbers that belong to the protocol layer in comm (the way UCX's
// UCT carries an active-message id without interpreting it).
//
// A transport instance belongs to one rank. The rank's progress loop calls
// Poll, which delivers arrived frames to a Handler and pushes queued sends
// forward; there is no goroutine per message and no hand-off on the fast
// path. A frame is queued with Send as a SendOp, whose payload belongs to
// the transport until the op reports Done.
//
// Implementations live in subpackages (shm, tcp, verbs), which never
// import each other; comm chooses among them by where the peer is and
// what it published (comm/transports.go), and adapts its protocols to
// their Caps. transporttest is the conformance suite each of them passes.
//
// Sleeping: when a rank has nothing to do it waits on a Bell, a futex word
// that every transport rings when something arrives (the shm transport's
// word lives in shared memory, so peers in other processes ring it too).
package transport
