package bootstrap

import (
	"fmt"
	"strconv"

	"github.com/parley-hpc/parley/internal/wire"
)

// A Card is what a rank publishes about itself at start-up, so that peers
// can reach it lazily: where it runs and the address of each transport.
type Card struct {
	Rank     int
	Node     string // host identity: ranks with equal Node share memory
	Hostname string
	Pid      int
	TCP      string // host:port of the rank's TCP listener, or ""
	Shm      string // name of the rank's segment under /dev/shm, or ""
	Verbs    []byte // the verbs transport's address, or nil
}

// CardKey is the key under which rank publishes its card.
func CardKey(rank int) string { return "card/" + strconv.Itoa(rank) }

const cardVersion = 1

// Append appends the encoding of c to b.
func (c *Card) Append(b []byte) []byte {
	b = wire.AppendUvarint(b, cardVersion)
	b = wire.AppendVarint(b, int64(c.Rank))
	b = wire.AppendString(b, c.Node)
	b = wire.AppendString(b, c.Hostname)
	b = wire.AppendVarint(b, int64(c.Pid))
	b = wire.AppendString(b, c.TCP)
	b = wire.AppendString(b, c.Shm)
	return wire.AppendBytes(b, c.Verbs)
}

// ParseCard decodes a card.
func ParseCard(b []byte) (*Card, error) {
	r := wire.NewReader(b)
	if v := r.Uvarint(); r.Err() == nil && v != cardVersion {
		return nil, fmt.Errorf("rank card of version %d, this program reads version %d", v, cardVersion)
	}
	c := &Card{Rank: r.Int(), Node: r.String(), Hostname: r.String(), Pid: r.Int(), TCP: r.String(), Shm: r.String()}
	if v := r.Bytes(); len(v) > 0 {
		c.Verbs = append([]byte(nil), v...)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("rank card: %w", err)
	}
	return c, nil
}
