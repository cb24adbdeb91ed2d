//go:build linux

package launcher

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// maxLine is the most an agent buffers of a line without a newline before
// it forwards the piece anyway.
const maxLine = 64 << 10

// lineSplitter turns a byte stream into chunks of whole lines.
type lineSplitter struct {
	partial []byte
}

// feed appends p and returns the whole lines now complete (possibly
// several, ending in '\n'), or a forced piece of an over-long line.
func (s *lineSplitter) feed(p []byte) []byte {
	s.partial = append(s.partial, p...)
	i := bytes.LastIndexByte(s.partial, '\n')
	if i < 0 {
		if len(s.partial) >= maxLine {
			out := s.partial
			s.partial = nil
			return out
		}
		return nil
	}
	out := make([]byte, i+1)
	copy(out, s.partial[:i+1])
	s.partial = append(s.partial[:0], s.partial[i+1:]...)
	return out
}

// flush returns what is left (a last line without newline).
func (s *lineSplitter) flush() []byte {
	out := s.partial
	s.partial = nil
	return out
}

// printer writes ranks' output to mpirun's stdout and stderr, a whole chunk
// of lines at a time, so lines of different ranks never interleave.
type printer struct {
	mu        sync.Mutex
	stdout    io.Writer
	stderr    io.Writer
	tag       bool
	timestamp bool
	jobTag    string // Open MPI's "[jobid,rank]" prefix uses the job family; we use 1
	buf       []byte
}

// write prints data (whole lines, or a final piece) from rank's stream.
func (p *printer) write(rank, stream int, data []byte) {
	if len(data) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.stdout
	name := "stdout"
	if stream == 2 {
		w, name = p.stderr, "stderr"
	}
	if !p.tag && !p.timestamp {
		w.Write(data)
		return
	}
	b := p.buf[:0]
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if p.timestamp {
			b = append(b, '[')
			b = time.Now().AppendFormat(b, "2006-01-02T15:04:05.000000")
			b = append(b, ']')
		}
		if p.tag {
			b = append(b, "[1,"...)
			b = strconv.AppendInt(b, int64(rank), 10)
			b = append(b, "]<"...)
			b = append(b, name...)
			b = append(b, ">:"...)
		}
		b = append(b, line...)
		if line[len(line)-1] != '\n' {
			b = append(b, '\n')
		}
	}
	w.Write(b)
	if cap(b) <= 1<<20 {
		p.buf = b
	}
}

// notice prints one of mpirun's own messages on stderr.
func (p *printer) notice(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.stderr, "mpirun: "+format+"\n", args...)
}
