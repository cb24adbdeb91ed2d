//go:build linux

package launcher

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	files     *rankFiles // --output-filename: each rank's output also (or only) in files
	noCopy    bool       // with files: nothing on mpirun's stdout and stderr
}

// write prints data (whole lines, or a final piece) from rank's stream.
func (p *printer) write(rank, stream int, data []byte) {
	if len(data) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.files != nil && p.files.write(rank, stream, data, p.stderr) && p.noCopy {
		return
	}
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

// openRank creates a rank's output files (when it starts, so a rank that
// prints nothing still has them).
func (p *printer) openRank(rank int) {
	if p.files == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files.open(rank, p.stderr)
}

// closeFiles closes the output files; later output goes nowhere.
func (p *printer) closeFiles() {
	if p.files == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files.close()
}

// rankFiles writes each rank's output to its own files in Open MPI's
// layout, DIR/1/rank.N/stdout and DIR/1/rank.N/stderr ("1" is the job's
// number within this mpirun; N is zero-padded to the width of the last
// rank, so listings sort). With stderr merged into stdout there is only
// stdout. Writes go straight to the files, unbuffered: what a rank said
// before it failed is in its file when mpirun reports the failure.
type rankFiles struct {
	dir    string // as given on the command line (for messages)
	abs    string // absolute: ranks' working directories do not matter
	width  int
	merged bool
	files  map[int]*[3]*os.File // index 1 stdout, 2 stderr
	failed bool                 // a file could not be made; reported once
}

func newRankFiles(dir string, size int, merged bool) (*rankFiles, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(abs, "1"), 0o755); err != nil {
		return nil, fmt.Errorf("--output-filename: %w", err)
	}
	return &rankFiles{dir: dir, abs: abs, width: len(strconv.Itoa(max(size-1, 0))), merged: merged, files: map[int]*[3]*os.File{}}, nil
}

// path is where a rank's stream goes, as the user named the directory.
func (f *rankFiles) path(rank, stream int) string {
	return filepath.Join(f.dir, f.rel(rank, stream))
}

func (f *rankFiles) rel(rank, stream int) string {
	name := "stdout"
	if stream == 2 && !f.merged {
		name = "stderr"
	}
	return filepath.Join("1", fmt.Sprintf("rank.%0*d", f.width, rank), name)
}

// open creates a rank's files the first time; a failure is reported once
// on mpirun's stderr (w), and that rank's output then goes to mpirun's
// stdout and stderr even with :nocopy.
func (f *rankFiles) open(rank int, w io.Writer) *[3]*os.File {
	if fs, ok := f.files[rank]; ok {
		return fs
	}
	fs := new([3]*os.File)
	f.files[rank] = fs
	streams := []int{1, 2}
	if f.merged {
		streams = streams[:1]
	}
	for _, st := range streams {
		full := filepath.Join(f.abs, f.rel(rank, st))
		err := os.MkdirAll(filepath.Dir(full), 0o755)
		if err == nil {
			fs[st], err = os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		}
		if err != nil && !f.failed {
			f.failed = true
			fmt.Fprintf(w, "mpirun: --output-filename: %v (that rank's output goes to mpirun's stdout and stderr)\n", err)
		}
	}
	return fs
}

// write appends data to the rank's file for stream; false if there is
// no such file.
func (f *rankFiles) write(rank, stream int, data []byte, w io.Writer) bool {
	fs := f.open(rank, w)
	if f.merged {
		stream = 1
	}
	if fs[stream] == nil {
		return false
	}
	_, err := fs[stream].Write(data)
	return err == nil
}

func (f *rankFiles) close() {
	for _, fs := range f.files {
		for i, fl := range fs {
			if fl != nil {
				fl.Close()
				fs[i] = nil
			}
		}
	}
}
