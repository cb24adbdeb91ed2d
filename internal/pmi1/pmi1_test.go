package pmi1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// server is a small simple-PMI server for the tests, answering as
// Hydra does (its transcript from mpiexec.hydra 4.0: test/cluster runs the
// real one): one key-value space, a barrier of size processes, and the
// PMI_PORT greeting when port is set.
type server struct {
	mu      sync.Mutex
	cond    *sync.Cond
	size    int
	kv      map[string]string
	arrived int
	gen     int
	port    bool
}

func newServer(size int) *server {
	s := &server{size: size, kv: map[string]string{"PMI_process_mapping": "(vector,(0,1,2))"}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *server) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		m, err := Decode(line)
		if err != nil {
			fmt.Fprintf(c, "cmd=error msg=bad\n")
			return
		}
		switch m["cmd"] {
		case "initack":
			fmt.Fprintf(c, "cmd=initack\ncmd=set size=%d\ncmd=set rank=%s\ncmd=set debug=0\n", s.size, m["pmiid"])
		case "init":
			io.WriteString(c, "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n")
		case "get_maxes":
			io.WriteString(c, "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024\n")
		case "get_my_kvsname":
			io.WriteString(c, "cmd=my_kvsname kvsname=kvs_42_0\n")
		case "put":
			s.mu.Lock()
			s.kv[m["key"]] = m["value"]
			s.mu.Unlock()
			io.WriteString(c, "cmd=put_result rc=0 msg=success\n")
		case "barrier_in":
			s.mu.Lock()
			gen := s.gen
			if s.arrived++; s.arrived == s.size {
				s.arrived, s.gen = 0, s.gen+1
				s.cond.Broadcast()
			}
			for s.gen == gen {
				s.cond.Wait()
			}
			s.mu.Unlock()
			io.WriteString(c, "cmd=barrier_out\n")
		case "get":
			s.mu.Lock()
			v, ok := s.kv[m["key"]]
			s.mu.Unlock()
			if ok {
				fmt.Fprintf(c, "cmd=get_result rc=0 msg=success value=%s\n", v)
			} else {
				io.WriteString(c, "cmd=get_result rc=-1 msg=key_not_found\n")
			}
		case "finalize":
			io.WriteString(c, "cmd=finalize_ack\n")
		}
	}
}

// TestExchange: four processes put, fence and get each other's keys, over
// PMI_FD-style connections and PMI_PORT-style ones.
func TestExchange(t *testing.T) {
	for _, port := range []bool{false, true} {
		t.Run(fmt.Sprintf("port=%v", port), func(t *testing.T) {
			const n = 4
			s := newServer(n)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for rank := range n {
				a, b := net.Pipe()
				go s.serve(b)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var c *Client
					var err error
					if port {
						c, err = NewPort(a, rank)
					} else {
						c, err = New(a, rank, n)
					}
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					if c.Rank != rank || c.Size != n {
						errs <- fmt.Errorf("rank %d size %d, want %d %d", c.Rank, c.Size, rank, n)
						return
					}
					if err := c.Put(fmt.Sprintf("card-%d", rank), fmt.Sprintf("%x", rank*1000)); err != nil {
						errs <- err
						return
					}
					if err := c.Fence(); err != nil {
						errs <- err
						return
					}
					for peer := range n {
						v, err := c.Get(fmt.Sprintf("card-%d", peer))
						if err != nil || v != fmt.Sprintf("%x", peer*1000) {
							errs <- fmt.Errorf("rank %d get card-%d: %q %v", rank, peer, v, err)
							return
						}
					}
					if _, err := c.Get("nobody"); err == nil {
						errs <- fmt.Errorf("a missing key was found")
						return
					}
					if v, ok, err := c.JobAttr("PMI_process_mapping"); !ok || err != nil || v != "(vector,(0,1,2))" {
						errs <- fmt.Errorf("process mapping %q %v %v", v, ok, err)
						return
					}
					errs <- c.Finalize()
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestEncodeRefusesBreakingValues(t *testing.T) {
	for _, v := range []string{"a b", "a\nb"} {
		if _, err := Encode("put", "key", "k", "value", v); err == nil {
			t.Errorf("value %q encoded", v)
		}
	}
	if s, err := Encode("put", "key", "k", "value", "a=b"); err != nil || s != "cmd=put key=k value=a=b\n" {
		t.Errorf("%q %v", s, err)
	}
	if m, err := Decode("cmd=get_result rc=0 value=a=b\n"); err != nil || m["value"] != "a=b" {
		t.Errorf("%v %v", m, err)
	}
}

// FuzzDecode: any line decodes or fails cleanly, and what decodes
// encodes back to a line that decodes to the same pairs.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"cmd=barrier_out\n", "cmd=get_result rc=0 msg=success value=0a1b\n", "cmd=set size=4", "cmd= x=", "=", "cmd=a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := Decode(line)
		if err != nil {
			return
		}
		var kv []string
		for k, v := range m {
			if k != "cmd" {
				kv = append(kv, k, v)
			}
		}
		enc, err := Encode(m["cmd"], kv...)
		if err != nil {
			t.Fatalf("%q decoded to %v, which does not encode: %v", line, m, err)
		}
		m2, err := Decode(enc)
		if err != nil || len(m2) != len(m) {
			t.Fatalf("%q -> %v -> %q -> %v %v", line, m, enc, m2, err)
		}
	})
}
