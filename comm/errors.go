package comm

import (
	"errors"
	"fmt"

	"github.com/parley-hpc/parley/internal/coll"
	"github.com/parley-hpc/parley/transport"
)

// Errors to test with errors.Is. The transport sentinels are the same
// values, so an error from any layer matches.
var (
	// ErrTruncated: a message is longer than the buffer given to receive
	// it. The receive fails; nothing is cut silently.
	ErrTruncated = errors.New("message truncated")
	// ErrPeerLost: the link to a rank failed, or the job is ending because
	// a rank failed.
	ErrPeerLost = transport.ErrPeerLost
	// ErrNotSupported: the operation or transport is not available here.
	ErrNotSupported = transport.ErrNotSupported
	// ErrAuth: a peer could not prove it belongs to the job.
	ErrAuth = transport.ErrAuth
	// ErrFinalized: the runtime was finalized.
	ErrFinalized = errors.New("runtime finalized")
	// ErrFreed: the communicator was freed (Free).
	ErrFreed = errors.New("communicator freed")
	// ErrCommNull: a nil communicator (the result of Split for a rank that
	// gave Undefined) was used.
	ErrCommNull = errors.New("nil communicator (Split with Undefined gives none)")
	// ErrInvalidArg: a rank, tag, count or other argument is out of range.
	ErrInvalidArg = errors.New("invalid argument")
	// ErrCancelled: the request was cancelled before it matched.
	ErrCancelled = errors.New("request cancelled")
	// ErrAborted: the job is ending because a rank called Abort.
	ErrAborted = errors.New("job aborted")
	// ErrReleased: a request was used after Release.
	ErrReleased = errors.New("request used after Release")
	// ErrMismatch: ranks called different collectives, or the same one
	// with arguments that must agree (root, operator, count) but differ.
	ErrMismatch = errors.New("collective mismatch")
	// ErrRevoked: a collective failed on some rank of the communicator,
	// which told the others; its collectives are unusable from then on
	// (the cause is a RevokedError naming that rank and why).
	ErrRevoked = errors.New("communicator's collectives revoked")
	// ErrProtocol: a peer sent a frame that breaks the protocol.
	ErrProtocol = transport.ErrProtocol
)

// OpError describes a failed operation: what, on which communicator and
// rank, with which peer and tag.
type OpError struct {
	Op   string // "send", "recv", "split", ...
	Comm string // communicator name, "world" or "comm#<context>"
	Rank int    // the calling rank in Comm
	Peer int    // the peer rank in Comm, or AnySource, or -3 for none
	Tag  int
	Err  error
}

// noPeer marks an OpError that involves no peer.
const noPeer = -3

func (e *OpError) Error() string {
	s := fmt.Sprintf("%s on %s (rank %d", e.Op, e.Comm, e.Rank)
	switch e.Peer {
	case noPeer:
	case AnySource:
		s += ", from any source"
	default:
		s += fmt.Sprintf(", peer %d", e.Peer)
	}
	if e.Tag != noPeer {
		if e.Tag == AnyTag {
			s += ", any tag"
		} else {
			s += fmt.Sprintf(", tag %d", e.Tag)
		}
	}
	return s + "): " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// TruncatedError is the cause inside an OpError for ErrTruncated: it names
// both sizes.
type TruncatedError struct {
	Message int // bytes sent
	Buffer  int // bytes the receive buffer holds
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("message of %d bytes does not fit the %d-byte receive buffer", e.Message, e.Buffer)
}

func (e *TruncatedError) Is(target error) bool { return target == ErrTruncated }

// MismatchError is the cause inside an OpError for ErrMismatch: a
// collective's message came from a rank that called another collective,
// or the same one with other arguments.
type MismatchError struct {
	Peer      int    // the other rank, in the communicator
	Got, Want uint32 // the check words: the peer's, and this rank's
}

func (e *MismatchError) Error() string { return coll.Mismatch(e.Peer, e.Got, e.Want) }

func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }
