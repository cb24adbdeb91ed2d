// Package shm moves frames between ranks of one host through shared
// memory.
//
// Each rank owns one segment, a file under /dev/shm (mode 0600, named
// parley-<job>-<rank>), holding one multi-producer, single-consumer queue:
// every peer on the host that sends to the rank writes into it, and the
// rank polls only its own queue, so the cost of a poll does not grow with
// the number of local ranks and the memory of a host grows with ranks, not
// with their square.
//
// Segment layout (offsets in bytes; every control word on a cache line of
// its own, so that producers and the consumer do not false-share):
//
//	   0  magic "PRLYSHM1" (8), version (4), slots (4), owner pid (8)
//	  64  head: next free position, advanced by producers with CAS
//	 128  tail: first position not yet consumed, written by the consumer
//	 192  bell: futex word, 1 while the consumer sleeps or is about to
//	4096  slots: nslots cache lines of 64 bytes
//
// A frame occupies consecutive slots: the first begins with a sequence
// word (8 bytes) followed by the 40-byte wire.Header, and the payload runs
// on from byte 48 through the following slots. Positions grow forever (64
// bits) and are masked by the power-of-two slot count; a frame never wraps
// around the end: the producer pads the rest of the ring with a skip frame.
//
// Ordering (Go's atomics are sequentially consistent; across processes we
// rely on their implementation on amd64 and arm64, where an atomic store
// is a release and an atomic load an acquire):
//   - a producer reserves slots with a CAS on head, after checking against
//     tail that they are free;
//   - it writes the header and payload with plain stores, then stores the
//     sequence word (position+1) atomically: that store publishes the frame;
//   - the consumer loads the sequence word of the slot at tail atomically;
//     equal to tail+1 means a frame is there, and its bytes are visible;
//   - after handing the frame on, the consumer overwrites the sequence word
//     of every slot the frame used (so that payload bytes left in a slot can
//     never pass for a later header), then stores the new tail atomically,
//     which gives the slots back to producers.
//
// Everything read from the ring is checked before use: a length that would
// reach past the ring, a skip longer than what is left, are integrity
// errors that fail the transport, never a panic or an out-of-bounds read.
//
// Waking: a consumer about to sleep stores 1 in its bell and checks its
// queue once more; a producer, after publishing, rings the bell if it is
// set (swap to 0, FUTEX_WAKE). A producer pays one load of a line the
// consumer rarely writes; the consumer sleeps without losing a wake-up.
//
// Large messages do not go through the ring: comm sends their address,
// and the receiver copies them in one step with process_vm_readv where the
// kernel permits it; otherwise they move in pipelined data frames.
package shm
