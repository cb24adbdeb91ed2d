package verbs

import (
	"runtime"
	"sync"
)

// regCache keeps memory registrations for reuse: registering is a system
// call that pins pages (tens of microseconds per megabyte), and programs
// send from and receive into the same buffers again and again.
//
// Each cached region holds a runtime.Pinner on its buffer. The pin is
// what makes registration safe in Go: the adapter keeps using the memory
// after the call that registered it, which cgo's rules allow only for
// pinned Go memory, and a pinned object is neither moved (Go's heap never
// moves objects anyway) nor freed. So a cached region also keeps its
// buffer alive; limit bounds the bytes so held by regions nobody uses.
type regCache struct {
	dev   Device
	limit int

	mu      sync.Mutex
	entries map[regKey]*regEntry
	idle    int // bytes of regions with no user
	tick    uint64
}

type regKey struct {
	addr   uint64
	len    int
	access Access
}

type regEntry struct {
	mr   *MR
	pin  runtime.Pinner
	refs int
	used uint64
}

func newRegCache(dev Device, limit int) *regCache {
	return &regCache{dev: dev, limit: limit, entries: make(map[regKey]*regEntry)}
}

// get returns a region covering buf with access, registering it if no
// cached one does; release gives it back.
func (c *regCache) get(buf []byte, access Access) (*MR, error) {
	k := regKey{addrOf(buf), len(buf), access}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if e := c.entries[k]; e != nil {
		if e.refs == 0 {
			c.idle -= e.mr.Len
		}
		e.refs++
		e.used = c.tick
		return e.mr, nil
	}
	e := &regEntry{refs: 1, used: c.tick}
	e.pin.Pin(&buf[0])
	mr, err := c.dev.Register(buf, access)
	if err != nil {
		e.pin.Unpin()
		return nil, err
	}
	e.mr = mr
	c.entries[k] = e
	return mr, nil
}

// release ends one use of mr; unused regions beyond the limit are
// deregistered, least recently used first.
func (c *regCache) release(mr *MR) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[regKey{mr.Addr, mr.Len, mr.Access}]
	if e == nil || e.mr != mr || e.refs == 0 {
		return
	}
	e.refs--
	if e.refs > 0 {
		return
	}
	c.idle += mr.Len
	for c.idle > c.limit {
		var old *regEntry
		var oldKey regKey
		for k, e := range c.entries {
			if e.refs == 0 && (old == nil || e.used < old.used) {
				old, oldKey = e, k
			}
		}
		if old == nil {
			return
		}
		c.drop(oldKey, old)
	}
}

// releaseExposed ends one use of the region Expose made for the buffer at
// addr of n bytes, if rkey is its key.
func (c *regCache) releaseExposed(addr uint64, n int, rkey uint32) {
	c.mu.Lock()
	e := c.entries[regKey{addr, n, RemoteRead}]
	c.mu.Unlock()
	if e != nil && e.mr.RKey == rkey {
		c.release(e.mr)
	}
}

func (c *regCache) drop(k regKey, e *regEntry) {
	if e.refs == 0 {
		c.idle -= e.mr.Len
	}
	c.dev.Deregister(e.mr)
	e.pin.Unpin()
	delete(c.entries, k)
}

// close deregisters everything.
func (c *regCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		c.drop(k, e)
	}
}
