// Package pmi2 is a client of the PMI-2 wire protocol that Slurm's srun
// --mpi=pmi2 (and MPICH's Hydra) serve to the processes they start: a
// key-value store with a fence, so that ranks started without mpirun can
// exchange their cards.
//
// The protocol, on the socket whose descriptor is in PMI_FD:
//
//	-> "cmd=init pmi_version=2 pmi_subversion=0\n"        (PMI-1 style line)
//	<- "cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n"
//	-> "%-6d" length, then "cmd=fullinit;pmijobid=J;pmirank=R;threaded=FALSE;"
//	<- length, "cmd=fullinit-response;rc=0;rank=R;size=N;..."
//	   kvs-put, kvs-fence, kvs-get, info-getjobattr, abort, finalize
//
// Keys and values are "key=value;" pairs; a ';' inside a value is written
// ";;". Responses carry rc=0 on success.
package pmi2

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
)

// ErrVersion: the server does not speak PMI-2 (it may speak PMI-1 on the
// same socket).
var ErrVersion = errors.New("the process manager does not speak PMI-2")

// MaxValue is the longest value PMI-2 servers accept (PMI2_MAX_VALLEN).
const MaxValue = 1024

// Client is a PMI-2 connection. Its methods are safe for concurrent use.
type Client struct {
	mu    sync.Mutex
	rw    io.ReadWriter
	r     *bufio.Reader
	c     io.Closer
	jobID string
	Rank  int
	Size  int
}

// Available reports whether the process was started by a PMI-2 server.
func Available() bool { return os.Getenv("PMI_FD") != "" }

// Connect opens the connection named by PMI_FD and initializes it.
func Connect() (*Client, error) {
	fd, err := strconv.Atoi(os.Getenv("PMI_FD"))
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("pmi2: PMI_FD=%q is not a descriptor", os.Getenv("PMI_FD"))
	}
	f := os.NewFile(uintptr(fd), "pmi")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("pmi2: PMI_FD %d: %w", fd, err)
	}
	rank, _ := strconv.Atoi(os.Getenv("PMI_RANK"))
	c, err := New(nc, os.Getenv("PMI_JOBID"), rank)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// New runs the PMI-2 initialization on rw for rank of job.
func New(rw io.ReadWriteCloser, jobID string, rank int) (*Client, error) {
	c := &Client{rw: rw, r: bufio.NewReader(rw), c: rw, jobID: jobID, Rank: rank}
	if _, err := io.WriteString(rw, "cmd=init pmi_version=2 pmi_subversion=0\n"); err != nil {
		return nil, fmt.Errorf("pmi2 init: %w", err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("pmi2 init: %w", err)
	}
	// "cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0": a
	// server of PMI-1 only answers with its own version or an error.
	fields := map[string]string{}
	for _, tok := range strings.Fields(line) {
		if k, v, ok := strings.Cut(tok, "="); ok {
			fields[k] = v
		}
	}
	if fields["rc"] != "0" || fields["pmi_version"] != "2" {
		return nil, fmt.Errorf("pmi2 init: %w: the server answered %q", ErrVersion, strings.TrimSpace(line))
	}
	resp, err := c.call("fullinit", "pmijobid", jobID, "pmirank", strconv.Itoa(rank), "threaded", "FALSE")
	if err != nil {
		return nil, err
	}
	if c.Size, err = strconv.Atoi(resp["size"]); err != nil || c.Size < 1 {
		return nil, fmt.Errorf("pmi2 fullinit: size %q", resp["size"])
	}
	if r, ok := resp["rank"]; ok {
		if c.Rank, err = strconv.Atoi(r); err != nil {
			return nil, fmt.Errorf("pmi2 fullinit: rank %q", r)
		}
	}
	return c, nil
}

// Encode renders a command: cmd=NAME;k=v;...; with ';' escaped as ';;'.
func Encode(cmd string, kv ...string) string {
	var b strings.Builder
	b.WriteString("cmd=" + cmd + ";")
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i] + "=" + strings.ReplaceAll(kv[i+1], ";", ";;") + ";")
	}
	return b.String()
}

// Decode parses a command or response into its pairs.
func Decode(s string) (map[string]string, error) {
	m := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("pmi2: malformed message %q", s)
		}
		key := s[:eq]
		s = s[eq+1:]
		var val strings.Builder
		for {
			i := strings.IndexByte(s, ';')
			if i < 0 {
				return nil, fmt.Errorf("pmi2: unterminated value for %q", key)
			}
			val.WriteString(s[:i])
			if i+1 < len(s) && s[i+1] == ';' {
				val.WriteByte(';')
				s = s[i+2:]
				continue
			}
			s = s[i+1:]
			break
		}
		m[key] = val.String()
	}
	return m, nil
}

// call sends a command and reads its response, failing on rc != 0.
func (c *Client) call(cmd string, kv ...string) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	body := Encode(cmd, kv...)
	if _, err := fmt.Fprintf(c.rw, "%-6d%s", len(body), body); err != nil {
		return nil, fmt.Errorf("pmi2 %s: %w", cmd, err)
	}
	var hdr [6]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, fmt.Errorf("pmi2 %s: %w", cmd, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(hdr[:])))
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("pmi2 %s: bad length %q", cmd, hdr[:])
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, fmt.Errorf("pmi2 %s: %w", cmd, err)
	}
	m, err := Decode(string(buf))
	if err != nil {
		return nil, fmt.Errorf("pmi2 %s: %w", cmd, err)
	}
	if m["rc"] != "0" {
		msg := m["errmsg"]
		if msg == "" {
			msg = string(buf)
		}
		return m, fmt.Errorf("pmi2 %s failed (rc=%s): %s", cmd, m["rc"], msg)
	}
	return m, nil
}

// Put publishes a key for the next Fence.
func (c *Client) Put(key, value string) error {
	if len(value) > MaxValue {
		return fmt.Errorf("pmi2 put %s: value of %d bytes exceeds %d", key, len(value), MaxValue)
	}
	_, err := c.call("kvs-put", "key", key, "value", value)
	return err
}

// Fence waits for every process of the job.
func (c *Client) Fence() error {
	_, err := c.call("kvs-fence")
	return err
}

// ErrNotFound: the key was not published.
var ErrNotFound = errors.New("key not found")

// Get returns a key published before the last Fence.
func (c *Client) Get(key string) (string, error) {
	m, err := c.call("kvs-get", "jobid", c.jobID, "srcid", "-1", "key", key)
	if err != nil {
		return "", err
	}
	if m["found"] != "TRUE" {
		return "", fmt.Errorf("pmi2 get %s: %w", key, ErrNotFound)
	}
	return m["value"], nil
}

// JobAttr returns a job attribute (PMI_process_mapping, say).
func (c *Client) JobAttr(key string) (string, bool, error) {
	m, err := c.call("info-getjobattr", "key", key)
	if err != nil {
		return "", false, err
	}
	return m["value"], m["found"] == "TRUE", nil
}

// Abort asks the server to end the job.
func (c *Client) Abort(msg string) error {
	_, err := c.call("abort", "isworld", "TRUE", "msg", msg)
	return err
}

// Finalize ends the connection's session.
func (c *Client) Finalize() error {
	_, err := c.call("finalize")
	return err
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }
