// Package shm moves frames between ranks of one host through shared
// memory.
//
// Each rank owns one segment, a file under /dev/shm (mode 0600, named
// parley-<job>-<rank>), holding one single-producer, single-consumer ring
// for each other rank of the host, indexed by the sender's local rank. A
// sender writes only into its own ring of the receiver's segment, so
// sending needs no atomic read-modify-write at all; the receiver polls the
// rings of the senders that have announced themselves in the segment's
// active bitmap, so a poll costs one load per active peer. The file is
// sparse: a ring costs memory only once a sender uses it, so a host's
// memory grows with the pairs that talk. Rings are 128 KiB up to 16 local
// ranks, 64 KiB up to 64, and 32 KiB beyond, so that a rank's segment
// stays within 2 MiB up to 16 ranks and 4 MiB up to 128 when every rank
// talks to every other (RingSlots).
//
// Lifetime: a rank removes its segment file when it closes the transport;
// the node agent removes the job's segments when the job ends however it
// ends; and Sweep, run by agents at start-up, removes the segments of dead
// jobs (a segment whose owner process is gone, recognized by pid and start
// time), which is what is left if a whole host's agent was killed.
//
// Segment layout (offsets in bytes; every word that more than one process
// writes sits on a cache line of its own):
//
//	   0  magic "PRLYSHM2" (8), version (4), rings (4), slots per ring (4),
//	      closed (4: 1 once the owner closed), owner pid (8), owner start time (8)
//	  64  bell: futex word, 1 while the owner sleeps or is about to
//	 128  active bitmap: bit r set once local rank r sends here
//	4096  ring 0, ring 1, ...; each ring is one line holding its tail
//	      (written by the consumer) and its sender word (the producer's
//	      world rank + 1, written once when it attaches, before it sets its
//	      bit), then its slots of 64 bytes
//	 end  the board, after the last ring (4096 bytes): the arrival word and
//	      the release word, each on a line of its own, then two parts, each
//	      a line holding its word and BoardMax (1 KiB) of data: where comm's
//	      small collectives on one host post what the others read in place
//	      (board.go)
//
// A frame occupies consecutive slots of a ring: the first begins with a
// sequence word (8 bytes) followed by the 40-byte wire.Header, and the
// payload runs on from byte 48 through the following slots. A frame whose
// header has no Cookie and no Aux is short: only the header's first 24
// bytes, a transport flag saying so, and the payload from byte 32, so
// that payloads of up to 32 bytes take one slot, not two (32 bytes, 2
// ranks, alternating blocks in one run: a Bcast took 0.76 and a
// ping-pong 0.80 of their time with two slots). Positions grow
// forever (64 bits) and are masked by the power-of-two slot count; a frame
// never wraps around the end: the producer pads the rest of the ring with
// a skip frame.
//
// Ordering (Go's atomics, which the memory model makes sequentially
// consistent; across processes we rely on how they are implemented on
// amd64 and arm64, a locked or release store and a plain or acquire load):
//   - the producer keeps its head position privately, and checks against
//     the ring's tail (read only when its cached copy says the ring looks
//     full) that the slots are free;
//   - it writes the header and payload, then stores the sequence word
//     (position+1) with a release store (internal/release: a plain MOV on
//     amd64, STLR on arm64, not atomic's XCHG, which would hold the
//     producer until the line came back from the polling consumer): that
//     store publishes the frame. The payload past the first slot goes
//     first, then the first slot's line (header, payload head, sequence
//     word) in one burst: the consumer polls that line, and a read of it
//     between two of the producer's stores takes it away, so that the
//     next store waits for it again (2 ranks, 5 interleaved runs against
//     header first: latency 128 B-16 KiB 0.81-0.93 of the time, 2-rank
//     Reduce 64-512 B 0.93-0.97, bw and bibw 32 B-1 KiB 0.93-1.04);
//   - the consumer loads the sequence word of the slot at its tail; equal
//     to tail+1 means a frame is there, and its bytes are visible;
//   - after handing frames on, the consumer stores the new tail at the end
//     of the poll, which gives the slots back to the producer; it writes
//     nothing else into the ring. A continuation slot's sequence word
//     holds payload, which a later lap's consumer must never take for a
//     header (the header slot's own word, position+1, can never equal a
//     later lap's): the producer keeps a bit per slot saying which words
//     hold payload, and overwrites such a word, in a free slot, before it
//     publishes the frame after which the consumer will look there (slot 0
//     always begins a frame: frames never wrap). TestRingStalePayload and
//     TestRingConcurrent fill payloads with words that would pass for the
//     next lap's headers. The consumer used to clear the words itself,
//     which took lines the producer held: its next atomic instruction (the
//     engine's unlock, the send of a reply) waited for them. bw of 8-16 KiB
//     moves 1.11-1.26 times the bytes a second since, bibw of 4-16 KiB
//     1.15-1.35 times (three interleaved compares against the build
//     before; TestRingConsumerWritesOnlyTail checks that the consumer
//     leaves the slots alone).
//
// Everything read from the segment is checked before use: a length that
// would reach past the ring, a skip longer than what is left, a bitmap bit
// for a ring that does not exist, a sender word naming no rank of the
// world, are integrity errors that fail the transport, never a panic or an
// out-of-bounds read. Frames are handed on with the sender's world rank
// from its ring's sender word, which comm checks against what each frame
// claims.
//
// Waking: a consumer about to sleep stores 1 in its bell and polls once
// more; a producer, after publishing, rings the bell if it is set (swap to
// 0, FUTEX_WAKE). A producer pays one load of a line the consumer rarely
// writes; the consumer sleeps without losing a wake-up.
//
// Messages up to EagerLimit (16 KiB) travel in one frame; up to ChainLimit
// (128 KiB: half a ring of a host of up to 8 ranks) in a chain of 8 KiB
// frames that comm queues back to back, which the receiver copies out
// while the sender writes the next. Larger messages do not go through the
// rings: comm sends their address, and the receiver copies them in one
// step with process_vm_readv where the kernel permits it; otherwise they
// move in pipelined data frames. Where the node agent measured the single
// copy faster than chains between its ranks' cores (MeasureMedium, before
// they start; Config.ReadFirst; the agent tells its ranks in
// PARLEY_SHM_MEDIUM=read or chain, which mpirun -x overrides), messages
// above EagerLimit all take it, and chains only links where the kernel
// refuses it.
package shm
