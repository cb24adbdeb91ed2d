package comm

// Wildcards for Recv, Irecv and Probe.
const (
	AnySource = -1 // receive from any rank
	AnyTag    = -1 // receive with any tag
)

// ProcNull is the rank of no process, as MPI_PROC_NULL (Open MPI's value):
// a send to it or a receive from it completes at once and moves nothing
// (the receive's status has Source ProcNull, Tag AnyTag, Count 0). It is
// what Cart.Shift returns past the open edge of a grid, so that halo
// exchanges need no special case at the boundary.
const ProcNull = -2

// MaxTag is the largest tag a program may use; tags are 0..MaxTag.
const MaxTag = 1<<30 - 1

// Status describes a received (or probed) message.
type Status struct {
	Source int // sender's rank in the communicator
	Tag    int
	Count  int // bytes
}
