// Package verbs moves frames between ranks on different hosts over RDMA
// verbs (InfiniBand, RoCE): one reliable-connected queue pair per pair of
// ranks that talk, made on first use.
//
// Layers. Device (device.go) is the adapter, as thin as libibverbs allows:
// create and destroy, register memory, post sends, receives and RDMA
// READs, poll completions. ibv_linux.go implements it with libibverbs
// through cgo, only in builds with the verbs tag (go build -tags verbs,
// cgo on, libibverbs-dev); other builds have Open fail with ErrNotBuilt
// and stay pure Go and static. fake.go implements it in Go, as an
// in-process fabric that enforces what adapters enforce (region bounds,
// keys and access flags, receiver not ready, completion-queue overflow,
// the error state), so the protocol in verbs.go is tested without an
// adapter: the transport conformance suite (transport/transporttest)
// and comm's own tests run over it.
//
// Connections. A rank publishes in its card the address of a small TCP
// listener. The first frame for a peer makes the queue pair, its buffers
// and posted receives, then dials the peer's listener, proves the job
// secret (internal/wire), and exchanges queue-pair endpoints (LID, GID,
// QPN, PSN); both sides move their queue pairs to ready-to-send before
// either sends. The job's key-value store is written once before the
// world starts, so queue pairs made later, on first use, cannot exchange
// endpoints through it: this side channel is what perftest and
// rdma_cm-less MPI builds use too. It stays open, and its end tells a rank
// that the peer is gone, which a queue pair that only receives would
// never see.
//
// Eager frames. Each rank posts Slots receive buffers of SlotSize bytes
// for each peer; a sender holds one credit per buffer the peer has
// posted, copies a frame (credit word, header, payload) into a registered
// send buffer and posts a send, so the SendOp completes at once. The
// receiver hands the frame on, posts the buffer again and owes a credit,
// which the next frame back carries, or a credit-only message once half
// are owed. A data frame leaves one credit unused so that credits can
// always be returned. Queue pairs allow no receiver-not-ready retries: a
// send without a posted receive is a protocol bug and fails loudly.
//
// Large messages. comm's rendezvous exposes the sender's buffer (Expose:
// registered for remote read, its address, length and key in the
// descriptor) and the receiver reads it with RDMA READ straight into its
// own buffer, in chunks of at most 1 GiB. Registrations are cached
// (regcache.go): registering pins pages with a system call, and programs
// reuse their buffers.
//
// Registration and Go's heap. The adapter reads and writes registered
// memory after the registering call returns, which cgo allows only for
// pinned Go memory. Every registered buffer is pinned with a
// runtime.Pinner for as long as it is registered: Go's heap does not move
// objects, and a pinned object is not freed, so the address registered
// stays the buffer's. The cache therefore keeps buffers alive; it
// deregisters (and unpins) the least recently used ones beyond 256 MiB
// of unused registrations.
//
// Hardware. No adapter was available where this package was written: the
// protocol ran over the fake adapter only, and the cgo layer was compiled,
// vetted, and run as far as reporting that no device exists.
package verbs
