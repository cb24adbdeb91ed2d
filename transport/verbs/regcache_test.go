package verbs

import "testing"

// TestRegCacheEvictsLeastRecentlyUsed: a region in use is reused rather
// than registered again, and once unused regions exceed the limit the
// least recently used is deregistered (doc.go's promise).
func TestRegCacheEvictsLeastRecentlyUsed(t *testing.T) {
	d := NewFabric().Open("fake0")
	const size = 4096
	c := newRegCache(d, 2*size)
	a, b, x := make([]byte, size), make([]byte, size), make([]byte, size)
	ma, _ := c.get(a, RemoteRead)
	if again, _ := c.get(a, RemoteRead); again != ma {
		t.Fatal("a cached region was registered again")
	}
	c.release(ma)
	c.release(ma)
	mb, _ := c.get(b, RemoteRead)
	c.release(mb)
	mx, _ := c.get(x, RemoteRead)
	c.release(mx) // three unused regions, room for two: a goes
	if d.mrs[ma.LKey] != nil || d.mrs[mb.LKey] == nil || d.mrs[mx.LKey] == nil {
		t.Fatalf("after eviction: a registered %v, b %v, x %v; want only a gone",
			d.mrs[ma.LKey] != nil, d.mrs[mb.LKey] != nil, d.mrs[mx.LKey] != nil)
	}
	if m, _ := c.get(a, RemoteRead); m == ma {
		t.Fatal("an evicted region came back from the cache")
	}
	c.close()
	if len(d.mrs) != 0 {
		t.Fatalf("%d keys still registered after close", len(d.mrs))
	}
}
