package comm

// Wildcards for Recv, Irecv and Probe.
const (
	AnySource = -1 // receive from any rank
	AnyTag    = -1 // receive with any tag
)

// MaxTag is the largest tag a program may use; tags are 0..MaxTag.
const MaxTag = 1<<30 - 1

// Status describes a received (or probed) message.
type Status struct {
	Source int // sender's rank in the communicator
	Tag    int
	Count  int // bytes
}
