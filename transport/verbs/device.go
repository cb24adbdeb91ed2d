package verbs

import (
	"errors"
	"fmt"
)

// Device is the thin surface of an RDMA adapter the transport uses: what
// libibverbs gives (ibv_linux.go, behind the verbs build tag) and what the
// in-process fake adapter imitates (fake.go). It stays this small so that
// the cgo layer holds no protocol: create and destroy, post send, receive
// and read, poll.
type Device interface {
	// Name is the adapter's name (mlx5_0, say).
	Name() string
	// Port returns the first active port, or an error naming why there is
	// none (every port down).
	Port() (PortAttr, error)
	// Register registers buf for access; the caller keeps buf alive and
	// unmoved (pinned) until Deregister.
	Register(buf []byte, access Access) (*MR, error)
	Deregister(mr *MR) error
	// NewCQ makes a completion queue of depth entries; wake is called
	// (from any goroutine) at the first completion after Arm.
	NewCQ(depth int, wake func()) (CQ, error)
	// NewQP makes a reliable-connected queue pair whose work completes on
	// cq.
	NewQP(cq CQ, caps QPCaps) (QP, error)
	Close() error
}

// PortAttr is what a peer needs of this adapter's port to reach it.
type PortAttr struct {
	Num int      // port number, from 1
	LID uint16   // InfiniBand local identifier (0 on RoCE)
	GID [16]byte // global identifier (RoCE, or routed InfiniBand)
	MTU int      // active path MTU in bytes
}

// Access says what a memory region allows.
type Access uint8

const (
	LocalWrite Access = 1 << iota // the adapter writes into it (receives, read destinations)
	RemoteRead                    // a peer reads it with RDMA READ
)

// MR is a registered memory region: the adapter may touch [Addr,
// Addr+Len) of this process's memory until it is deregistered.
type MR struct {
	Addr   uint64
	Len    int
	LKey   uint32 // names it in local work requests
	RKey   uint32 // names it in a peer's RDMA READ
	Access Access
	handle any // the device's own
}

// QPCaps size a queue pair.
type QPCaps struct {
	SendDepth, RecvDepth int
}

// Endpoint is one end of a connection: where a queue pair is.
type Endpoint struct {
	LID uint16
	GID [16]byte
	QPN uint32 // queue pair number
	PSN uint32 // first packet sequence number
}

// QP is a reliable-connected queue pair.
type QP interface {
	// Local is this queue pair's endpoint, for the peer.
	Local() Endpoint
	// Connect moves the queue pair to ready-to-send, talking to remote
	// (RESET, INIT, RTR, RTS). Calling it again with the same remote does
	// nothing.
	Connect(remote Endpoint) error
	PostSend(wr SendWR) error
	PostRecv(wr RecvWR) error
	Close() error
}

// CQ is a completion queue.
type CQ interface {
	// Poll fills wcs with completions and returns how many.
	Poll(wcs []WC) (int, error)
	// Arm asks for wake at the next completion.
	Arm() error
	Close() error
}

// Opcode is what a work request does.
type Opcode uint8

const (
	OpSend Opcode = iota + 1
	OpRecv
	OpRead
)

// SendWR is a send or an RDMA READ: one local buffer (Addr, Len, LKey),
// and for a read the peer's (RemoteAddr, RKey).
type SendWR struct {
	ID         uint64
	Op         Opcode
	Addr       uint64
	Len        int
	LKey       uint32
	RemoteAddr uint64
	RKey       uint32
}

// RecvWR posts one receive buffer.
type RecvWR struct {
	ID   uint64
	Addr uint64
	Len  int
	LKey uint32
}

// Status is a work completion's outcome (ibv_wc_status).
type Status uint8

const (
	Success Status = iota
	LocalLenErr
	LocalProtErr
	WRFlushErr
	RemoteAccessErr
	RemoteInvReqErr
	RetryExceeded
	RNRRetryExceeded
)

var statusNames = [...]string{Success: "success", LocalLenErr: "local length error", LocalProtErr: "local protection error",
	WRFlushErr: "flushed: the queue pair is in the error state", RemoteAccessErr: "remote access error",
	RemoteInvReqErr: "remote invalid request", RetryExceeded: "transport retry counter exceeded: the peer does not answer",
	RNRRetryExceeded: "receiver not ready: no receive posted"}

func (s Status) String() string {
	if int(s) < len(statusNames) && statusNames[s] != "" {
		return statusNames[s]
	}
	return fmt.Sprintf("status %d", s)
}

// WC is a work completion.
type WC struct {
	ID     uint64
	Status Status
	Op     Opcode
	Len    int     // bytes received (receives)
	fakeQP *fakeQP // the fake adapter's: whose send queue the completion frees
}

// Errors of the device layer.
var (
	// ErrNoDevice: no RDMA adapter, or none by the name asked for.
	ErrNoDevice = errors.New("no RDMA device")
	// ErrPortDown: the adapter has no active port.
	ErrPortDown = errors.New("no active port")
	// ErrNotBuilt: this binary was built without the verbs tag (and cgo).
	ErrNotBuilt = errors.New("this binary was built without RDMA verbs support (go build -tags verbs, with cgo and libibverbs-dev)")
	// ErrCQOverflow: completions arrived with the queue full; they are lost.
	ErrCQOverflow = errors.New("completion queue overflow")
	// ErrQPState: a work request posted to a queue pair not ready for it.
	ErrQPState = errors.New("queue pair not ready to send")
)
