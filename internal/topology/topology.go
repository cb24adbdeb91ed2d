package topology

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/parley-hpc/parley/internal/wire"
)

// CPU is one logical cpu (hardware thread) the process may use.
type CPU struct {
	ID      int // the kernel's cpu number
	Package int // physical package (socket) id
	Core    int // core index, unique across the host
	NUMA    int // NUMA node, 0 when the host has none
	L3      int // L3 domain index, unique across the host; -1 when unknown
}

// Topology is the usable cpus of a host, ordered by cpu number.
type Topology struct {
	CPUs []CPU
}

// Kind names a level of the hierarchy, as --map-by and --bind-to spell it.
type Kind string

const (
	HWThread Kind = "hwthread"
	Core     Kind = "core"
	L3Cache  Kind = "l3cache"
	NUMANode Kind = "numa"
	Socket   Kind = "socket"
	Machine  Kind = "node"
)

// Kinds lists the levels from the smallest to the largest.
var Kinds = []Kind{HWThread, Core, L3Cache, NUMANode, Socket, Machine}

// ParseKind accepts the names users write (Open MPI's and common aliases).
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "hwthread", "thread", "hwt":
		return HWThread, nil
	case "core", "cores":
		return Core, nil
	case "l3cache", "l3":
		return L3Cache, nil
	case "numa", "numanode":
		return NUMANode, nil
	case "socket", "package", "sockets":
		return Socket, nil
	case "node", "machine", "board":
		return Machine, nil
	}
	return "", fmt.Errorf("unknown object %q (known: hwthread, core, l3cache, numa, socket, node)", s)
}

// Read reads the topology under root ("/sys" on a live system) and keeps
// the cpus in allowed (all online cpus when allowed is nil).
func Read(root string, allowed []int) (*Topology, error) {
	cpuDir := filepath.Join(root, "devices/system/cpu")
	online, err := readList(filepath.Join(cpuDir, "online"))
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	keep := online
	if allowed != nil {
		keep = nil
		for _, c := range allowed {
			if slices.Contains(online, c) {
				keep = append(keep, c)
			}
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("topology: no usable cpu (online %v, allowed %v)", online, allowed)
	}
	numaOf := readNUMA(filepath.Join(root, "devices/system/node"))
	type coreKey struct{ pkg, core int }
	cores := map[coreKey]int{}
	l3s := map[string]int{}
	t := &Topology{}
	for _, id := range keep {
		dir := filepath.Join(cpuDir, "cpu"+strconv.Itoa(id))
		pkg, err1 := readInt(filepath.Join(dir, "topology/physical_package_id"))
		core, err2 := readInt(filepath.Join(dir, "topology/core_id"))
		if err := errors.Join(err1, err2); err != nil {
			// Some virtual machines lack topology files: one core per cpu.
			pkg, core = 0, id
		}
		if pkg < 0 {
			pkg = 0
		}
		k := coreKey{pkg, core}
		ci, ok := cores[k]
		if !ok {
			ci = len(cores)
			cores[k] = ci
		}
		c := CPU{ID: id, Package: pkg, Core: ci, NUMA: numaOf[id], L3: -1}
		if l3 := readL3(dir); l3 != "" {
			li, ok := l3s[l3]
			if !ok {
				li = len(l3s)
				l3s[l3] = li
			}
			c.L3 = li
		}
		t.CPUs = append(t.CPUs, c)
	}
	return t, nil
}

// ReadLocal reads this machine's topology, limited to this process's
// affinity.
func ReadLocal(allowed []int) (*Topology, error) { return Read("/sys", allowed) }

func readNUMA(dir string) map[int]int {
	m := map[int]int{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return m
	}
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "node")
		id, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		cpus, err := readList(filepath.Join(dir, e.Name(), "cpulist"))
		if err != nil {
			continue
		}
		for _, c := range cpus {
			m[c] = id
		}
	}
	return m
}

// readL3 returns the shared_cpu_list of cpu's level-3 cache, "" if none.
func readL3(cpuDir string) string {
	ents, err := os.ReadDir(filepath.Join(cpuDir, "cache"))
	if err != nil {
		return ""
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "index") {
			continue
		}
		d := filepath.Join(cpuDir, "cache", e.Name())
		if lvl, err := readInt(filepath.Join(d, "level")); err != nil || lvl != 3 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "shared_cpu_list"))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return ""
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func readList(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	l, err := ParseList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// ParseList parses a Linux cpu list such as "0-3,8,10-11".
func ParseList(s string) ([]int, error) {
	var out []int
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad cpu list %q", s)
		}
		b := a
		if isRange {
			b, err = strconv.Atoi(hi)
			if err != nil || b < a || b-a > 1<<16 {
				return nil, fmt.Errorf("bad cpu list %q", s)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// FormatList renders cpus as a Linux cpu list ("0-3,8").
func FormatList(cpus []int) string {
	c := slices.Clone(cpus)
	slices.Sort(c)
	c = slices.Compact(c)
	var b strings.Builder
	for i := 0; i < len(c); {
		j := i
		for j+1 < len(c) && c[j+1] == c[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(c[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(c[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Objects returns the cpus grouped by objects of kind k, in order of their
// first cpu: for Core, one group per core with its hardware threads.
func (t *Topology) Objects(k Kind) [][]int {
	var groups [][]int
	index := map[int]int{}
	for _, c := range t.CPUs {
		var key int
		switch k {
		case HWThread:
			key = c.ID
		case Core:
			key = c.Core
		case L3Cache:
			key = c.L3
			if key < 0 {
				key = c.Package // no L3 information: one per package
			}
		case NUMANode:
			key = c.NUMA
		case Socket:
			key = c.Package
		case Machine:
			key = 0
		}
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], c.ID)
	}
	return groups
}

// NumCores returns the number of cores with a usable cpu.
func (t *Topology) NumCores() int { return len(t.Objects(Core)) }

// Summary describes the topology in one line, for messages.
func (t *Topology) Summary() string {
	return fmt.Sprintf("%d sockets, %d NUMA nodes, %d cores, %d hardware threads (cpus %s)",
		len(t.Objects(Socket)), len(t.Objects(NUMANode)), len(t.Objects(Core)), len(t.CPUs), FormatList(t.IDs()))
}

// IDs returns the cpu numbers.
func (t *Topology) IDs() []int {
	ids := make([]int, len(t.CPUs))
	for i, c := range t.CPUs {
		ids[i] = c.ID
	}
	return ids
}

// Append encodes t.
func (t *Topology) Append(b []byte) []byte {
	b = wire.AppendUvarint(b, uint64(len(t.CPUs)))
	for _, c := range t.CPUs {
		b = wire.AppendInts(b, []int{c.ID, c.Package, c.Core, c.NUMA, c.L3})
	}
	return b
}

// Parse decodes a topology made by Append.
func Parse(b []byte) (*Topology, error) {
	r := wire.NewReader(b)
	n := r.Uvarint()
	if n == 0 || n > uint64(r.Len()) {
		return nil, fmt.Errorf("topology: bad cpu count %d", n)
	}
	t := &Topology{CPUs: make([]CPU, 0, n)}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		v := r.Ints()
		if len(v) != 5 {
			return nil, fmt.Errorf("topology: cpu record of %d fields", len(v))
		}
		t.CPUs = append(t.CPUs, CPU{ID: v[0], Package: v[1], Core: v[2], NUMA: v[3], L3: v[4]})
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return t, nil
}
