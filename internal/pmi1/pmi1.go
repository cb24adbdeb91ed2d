// Package pmi1 is a client of the simple PMI wire protocol (PMI-1) that
// MPICH's Hydra (mpiexec.hydra) and Flux serve to the processes they
// start: a key-value store with a barrier, so that ranks started without
// mpirun can exchange their cards.
//
// The protocol is lines of space-separated key=value pairs, on the socket
// whose descriptor is in PMI_FD (rank and size in PMI_RANK and PMI_SIZE),
// or on a TCP connection to PMI_PORT (host:port), which the client opens
// with "cmd=initack pmiid=$PMI_ID" and on which the server answers with
// the size and rank:
//
//	-> cmd=init pmi_version=1 pmi_subversion=1
//	<- cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0
//	-> cmd=get_maxes                 <- cmd=maxes kvsname_max=.. keylen_max=.. vallen_max=..
//	-> cmd=get_my_kvsname            <- cmd=my_kvsname kvsname=K
//	-> cmd=put kvsname=K key=k value=v        <- cmd=put_result rc=0
//	-> cmd=barrier_in                <- cmd=barrier_out
//	-> cmd=get kvsname=K key=k       <- cmd=get_result rc=0 value=v
//	-> cmd=finalize                  <- cmd=finalize_ack
//	-> cmd=abort exitcode=N
//
// A value may not hold spaces, '=' or newlines; parley's are hex.
package pmi1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxLine bounds a server's line, so that a broken server cannot make
// the client buffer without end.
const maxLine = 64 << 10

// Client is a PMI-1 connection. Its methods are safe for concurrent use.
type Client struct {
	mu      sync.Mutex
	rw      io.ReadWriteCloser
	r       *bufio.Reader
	kvsname string
	valMax  int
	Rank    int
	Size    int
}

// Available reports whether the process was started by a simple-PMI
// server (PMI_FD or PMI_PORT set).
func Available() bool { return os.Getenv("PMI_FD") != "" || os.Getenv("PMI_PORT") != "" }

// Connect opens the connection named by PMI_FD or PMI_PORT and
// initializes it.
func Connect() (*Client, error) {
	if port := os.Getenv("PMI_PORT"); port != "" && os.Getenv("PMI_FD") == "" {
		id, err := strconv.Atoi(os.Getenv("PMI_ID"))
		if err != nil {
			return nil, fmt.Errorf("pmi1: PMI_PORT=%s without a numeric PMI_ID (%q)", port, os.Getenv("PMI_ID"))
		}
		nc, err := net.DialTimeout("tcp", port, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("pmi1: PMI_PORT %s: %w", port, err)
		}
		c, err := NewPort(nc, id)
		if err != nil {
			nc.Close()
			return nil, err
		}
		return c, nil
	}
	nc, err := FDConn()
	if err != nil {
		return nil, err
	}
	rank, err1 := strconv.Atoi(os.Getenv("PMI_RANK"))
	size, err2 := strconv.Atoi(os.Getenv("PMI_SIZE"))
	if err1 != nil || err2 != nil {
		nc.Close()
		return nil, fmt.Errorf("pmi1: PMI_RANK=%q PMI_SIZE=%q are not numbers", os.Getenv("PMI_RANK"), os.Getenv("PMI_SIZE"))
	}
	c, err := New(nc, rank, size)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// FDConn returns the connection whose descriptor PMI_FD names.
func FDConn() (net.Conn, error) {
	fd, err := strconv.Atoi(os.Getenv("PMI_FD"))
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("pmi: PMI_FD=%q is not a descriptor", os.Getenv("PMI_FD"))
	}
	f := os.NewFile(uintptr(fd), "pmi")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("pmi: PMI_FD %d: %w", fd, err)
	}
	return nc, nil
}

// New initializes a PMI-1 session on rw for rank of a job of size.
func New(rw io.ReadWriteCloser, rank, size int) (*Client, error) {
	c := &Client{rw: rw, r: bufio.NewReaderSize(rw, 4096), Rank: rank, Size: size}
	if err := c.init(); err != nil {
		return nil, err
	}
	return c, nil
}

// NewPort opens a session on a connection to PMI_PORT: the server learns
// who this is from id and tells the size and rank.
func NewPort(rw io.ReadWriteCloser, id int) (*Client, error) {
	c := &Client{rw: rw, r: bufio.NewReaderSize(rw, 4096), Rank: -1, Size: -1}
	if err := c.send("initack", "pmiid", strconv.Itoa(id)); err != nil {
		return nil, err
	}
	if _, err := c.expect("initack"); err != nil {
		return nil, err
	}
	for c.Rank < 0 || c.Size < 0 {
		m, err := c.expect("set")
		if err != nil {
			return nil, err
		}
		if v, ok := m["size"]; ok {
			if c.Size, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("pmi1: size %q", v)
			}
		}
		if v, ok := m["rank"]; ok {
			if c.Rank, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("pmi1: rank %q", v)
			}
		}
	}
	// The server also sends "cmd=set debug=N"; it comes before the
	// response to init, which expect skips it for.
	if err := c.init(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) init() error {
	if c.Size < 1 || c.Rank < 0 || c.Rank >= c.Size {
		return fmt.Errorf("pmi1: rank %d of %d", c.Rank, c.Size)
	}
	m, err := c.call("response_to_init", "init", "pmi_version", "1", "pmi_subversion", "1")
	if err != nil {
		return err
	}
	if m["pmi_version"] != "1" {
		return fmt.Errorf("pmi1: the server speaks PMI version %q", m["pmi_version"])
	}
	if m, err = c.call("maxes", "get_maxes"); err != nil {
		return err
	}
	c.valMax, _ = strconv.Atoi(m["vallen_max"])
	if m, err = c.call("my_kvsname", "get_my_kvsname"); err != nil {
		return err
	}
	if c.kvsname = m["kvsname"]; c.kvsname == "" {
		return errors.New("pmi1: the server named no key-value space")
	}
	return nil
}

// Decode parses one line into its pairs. The value of a pair runs to the
// next space; a token without '=' is an error.
func Decode(line string) (map[string]string, error) {
	m := map[string]string{}
	for _, tok := range strings.Fields(line) {
		k, v, ok := strings.Cut(tok, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("pmi1: malformed token %q in %q", tok, line)
		}
		m[k] = v
	}
	if m["cmd"] == "" {
		return nil, fmt.Errorf("pmi1: no cmd in %q", line)
	}
	return m, nil
}

// Encode renders a command line, checking that no value breaks the line
// format.
func Encode(cmd string, kv ...string) (string, error) {
	var b strings.Builder
	b.WriteString("cmd=" + cmd)
	for i := 0; i+1 < len(kv); i += 2 {
		if strings.ContainsAny(kv[i], " =\n") || strings.ContainsAny(kv[i+1], " \n") {
			return "", fmt.Errorf("pmi1: %s: %q=%q cannot be sent (spaces, '=' or newlines)", cmd, kv[i], kv[i+1])
		}
		b.WriteString(" " + kv[i] + "=" + kv[i+1])
	}
	b.WriteByte('\n')
	return b.String(), nil
}

func (c *Client) send(cmd string, kv ...string) error {
	line, err := Encode(cmd, kv...)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(c.rw, line); err != nil {
		return fmt.Errorf("pmi1 %s: %w", cmd, err)
	}
	return nil
}

// expect reads lines until one with cmd=want; a "set" line the server
// volunteers (debug=N) is skipped unless wanted.
func (c *Client) expect(want string) (map[string]string, error) {
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, fmt.Errorf("pmi1: waiting for %s: %w", want, err)
		}
		m, err := Decode(line)
		if err != nil {
			return nil, err
		}
		if m["cmd"] == want {
			return m, nil
		}
		if m["cmd"] == "set" {
			continue
		}
		return nil, fmt.Errorf("pmi1: got %q, expected cmd=%s", strings.TrimSpace(line), want)
	}
}

func (c *Client) readLine() (string, error) {
	var b []byte
	for {
		part, isPrefix, err := c.r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, part...)
		if len(b) > maxLine {
			return "", fmt.Errorf("a line longer than %d bytes", maxLine)
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// call sends a command and reads the response named resp; an rc other
// than 0 is an error.
func (c *Client) call(resp, cmd string, kv ...string) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.send(cmd, kv...); err != nil {
		return nil, err
	}
	m, err := c.expect(resp)
	if err != nil {
		return nil, err
	}
	if rc, ok := m["rc"]; ok && rc != "0" {
		return m, fmt.Errorf("pmi1 %s failed (rc=%s): %s", cmd, rc, m["msg"])
	}
	return m, nil
}

// Put publishes a key for the next Fence.
func (c *Client) Put(key, value string) error {
	if c.valMax > 0 && len(value) > c.valMax {
		return fmt.Errorf("pmi1 put %s: value of %d bytes exceeds the server's %d", key, len(value), c.valMax)
	}
	_, err := c.call("put_result", "put", "kvsname", c.kvsname, "key", key, "value", value)
	return err
}

// Fence waits for every process of the job (PMI-1's barrier, which also
// makes the puts before it visible).
func (c *Client) Fence() error {
	_, err := c.call("barrier_out", "barrier_in")
	return err
}

// ErrNotFound: the key was not published.
var ErrNotFound = errors.New("key not found")

// Get returns a key published before the last Fence.
func (c *Client) Get(key string) (string, error) {
	m, err := c.call("get_result", "get", "kvsname", c.kvsname, "key", key)
	if err != nil {
		if m != nil {
			return "", fmt.Errorf("pmi1 get %s: %w", key, ErrNotFound)
		}
		return "", err
	}
	return m["value"], nil
}

// JobAttr returns an attribute the server keeps in the job's key-value
// space (PMI_process_mapping, say).
func (c *Client) JobAttr(key string) (string, bool, error) {
	v, err := c.Get(key)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	return v, err == nil, err
}

// Abort asks the server to end the job with code; the server answers by
// killing the job, so nothing is read.
func (c *Client) Abort(code int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.send("abort", "exitcode", strconv.Itoa(code))
}

// Finalize ends the session: the server then knows the process ends on
// purpose.
func (c *Client) Finalize() error {
	_, err := c.call("finalize_ack", "finalize")
	return err
}

// Close closes the connection.
func (c *Client) Close() error { return c.rw.Close() }
