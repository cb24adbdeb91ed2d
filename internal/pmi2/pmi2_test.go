package pmi2

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// server is a tiny PMI-2 server for the tests: a shared store, a fence
// of size processes.
type server struct {
	mu      sync.Mutex
	cond    *sync.Cond
	size    int
	kv      map[string]string
	arrived int
	gen     int
}

func (s *server) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "cmd=init pmi_version=2") {
		return
	}
	io.WriteString(c, "cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n")
	for {
		var hdr [6]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(hdr[:])))
		buf := make([]byte, n)
		io.ReadFull(r, buf)
		m, err := Decode(string(buf))
		if err != nil {
			return
		}
		var resp string
		switch m["cmd"] {
		case "fullinit":
			resp = Encode("fullinit-response", "rc", "0", "rank", m["pmirank"], "size", strconv.Itoa(s.size))
		case "kvs-put":
			s.mu.Lock()
			s.kv[m["key"]] = m["value"]
			s.mu.Unlock()
			resp = Encode("kvs-put-response", "rc", "0")
		case "kvs-fence":
			s.mu.Lock()
			gen := s.gen
			if s.arrived++; s.arrived == s.size {
				s.arrived, s.gen = 0, s.gen+1
				s.cond.Broadcast()
			}
			for gen == s.gen {
				s.cond.Wait()
			}
			s.mu.Unlock()
			resp = Encode("kvs-fence-response", "rc", "0")
		case "kvs-get":
			s.mu.Lock()
			v, ok := s.kv[m["key"]]
			s.mu.Unlock()
			found := "FALSE"
			if ok {
				found = "TRUE"
			}
			resp = Encode("kvs-get-response", "rc", "0", "found", found, "value", v)
		case "info-getjobattr":
			resp = Encode("info-getjobattr-response", "rc", "0", "found", "TRUE", "value", "(vector,(0,2,2))")
		case "finalize":
			resp = Encode("finalize-response", "rc", "0")
		default:
			resp = Encode(m["cmd"]+"-response", "rc", "1", "errmsg", "unknown command")
		}
		fmt.Fprintf(c, "%-6d%s", len(resp), resp)
	}
}

func TestProtocol(t *testing.T) {
	const size = 4
	s := &server{size: size, kv: map[string]string{}}
	s.cond = sync.NewCond(&s.mu)
	var wg sync.WaitGroup
	errs := make([]error, size)
	for r := 0; r < size; r++ {
		a, b := net.Pipe()
		go s.serve(b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = func() error {
				c, err := New(a, "7.0", r)
				if err != nil {
					return err
				}
				if c.Size != size || c.Rank != r {
					return fmt.Errorf("rank %d of %d", c.Rank, c.Size)
				}
				if err := c.Put(fmt.Sprintf("card/%d", r), fmt.Sprintf("v;%d;;x", r)); err != nil {
					return err
				}
				if err := c.Fence(); err != nil {
					return err
				}
				for p := 0; p < size; p++ {
					v, err := c.Get(fmt.Sprintf("card/%d", p))
					if err != nil || v != fmt.Sprintf("v;%d;;x", p) {
						return fmt.Errorf("get card/%d: %q %v", p, v, err)
					}
				}
				if _, err := c.Get("missing"); err == nil {
					return fmt.Errorf("a missing key was found")
				}
				if v, ok, err := c.JobAttr("PMI_process_mapping"); err != nil || !ok || v != "(vector,(0,2,2))" {
					return fmt.Errorf("job attribute: %q %v %v", v, ok, err)
				}
				return c.Finalize()
			}()
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

func TestCodec(t *testing.T) {
	s := Encode("kvs-put", "key", "a", "value", "x;y;;z")
	if s != "cmd=kvs-put;key=a;value=x;;y;;;;z;" {
		t.Fatalf("encode: %q", s)
	}
	m, err := Decode(s)
	if err != nil || !reflect.DeepEqual(m, map[string]string{"cmd": "kvs-put", "key": "a", "value": "x;y;;z"}) {
		t.Fatalf("decode: %v %v", m, err)
	}
	for _, bad := range []string{"cmd", "=x;", "cmd=x", "cmd=x;key"} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("cmd=kvs-get-response;rc=0;found=TRUE;value=a;;b;")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Decode(s)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		var kv []string
		cmd := m["cmd"]
		for k, v := range m {
			if k != "cmd" {
				kv = append(kv, k, v)
			}
		}
		if strings.ContainsAny(cmd, ";=") {
			return
		}
		for i := 0; i < len(kv); i += 2 {
			if strings.ContainsAny(kv[i], ";=") || kv[i] == "" {
				return
			}
		}
		back, err := Decode(Encode(cmd, kv...))
		if err != nil || !reflect.DeepEqual(back, m) {
			if _, has := m["cmd"]; has {
				t.Fatalf("%q -> %v -> %v (%v)", s, m, back, err)
			}
		}
	})
}
