//go:build linux

package launcher

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/parley-hpc/parley/internal/topology"
)

// MapPolicy says how ranks are laid out over hosts and over the objects
// of each host (--map-by).
type MapPolicy struct {
	// By is "slot", "node", "ppr" or a topology kind (hwthread, core,
	// l3cache, numa, socket).
	By string
	// PPR and PPRObject: N ranks per object, for By == "ppr".
	PPR       int
	PPRObject topology.Kind
	// PE is the number of cores (hardware threads when mapping by
	// hwthread) each rank gets; 0 or 1 means one.
	PE int
	// Oversubscribe from a ":oversubscribe" modifier.
	Oversubscribe bool
}

// ParseMapBy parses --map-by values: slot, node, core, hwthread, socket,
// numa, l3cache, ppr:N:OBJECT, each optionally followed by :pe=N
// (or :PE=N) and :oversubscribe.
func ParseMapBy(s string) (MapPolicy, error) {
	if s == "" {
		return MapPolicy{By: "slot"}, nil
	}
	parts := strings.Split(s, ":")
	var m MapPolicy
	head := strings.ToLower(parts[0])
	rest := parts[1:]
	switch head {
	case "slot", "node", "by-slot", "by-node":
		m.By = strings.TrimPrefix(head, "by-")
	case "ppr":
		if len(rest) < 2 {
			return m, fmt.Errorf("--map-by %q: ppr needs a count and an object, as in ppr:2:socket", s)
		}
		n, err := strconv.Atoi(rest[0])
		if err != nil || n < 1 {
			return m, fmt.Errorf("--map-by %q: ranks per object %q is not a positive number", s, rest[0])
		}
		k, err := topology.ParseKind(rest[1])
		if err != nil {
			return m, fmt.Errorf("--map-by %q: %w", s, err)
		}
		m.By, m.PPR, m.PPRObject = "ppr", n, k
		rest = rest[2:]
	default:
		k, err := topology.ParseKind(head)
		if err != nil {
			return m, fmt.Errorf("--map-by %q: %w (or slot, node, ppr:N:OBJECT)", s, err)
		}
		if k == topology.Machine {
			m.By = "node"
		} else {
			m.By = string(k)
		}
	}
	for _, mod := range rest {
		low := strings.ToLower(mod)
		switch {
		case strings.HasPrefix(low, "pe="):
			n, err := strconv.Atoi(mod[3:])
			if err != nil || n < 1 {
				return m, fmt.Errorf("--map-by %q: pe=%q is not a positive number", s, mod[3:])
			}
			m.PE = n
		case low == "oversubscribe":
			m.Oversubscribe = true
		case low == "nooversubscribe", low == "span", low == "fill", low == "":
		default:
			return m, fmt.Errorf("--map-by %q: unknown modifier %q (known: pe=N, oversubscribe)", s, mod)
		}
	}
	return m, nil
}

// BindPolicy says what each rank is bound to (--bind-to).
type BindPolicy struct {
	To       topology.Kind // "" with None for none
	None     bool
	Explicit bool // given by the user; else the default rule applies
}

// ParseBindTo parses --bind-to values: none, hwthread, core, l3cache,
// numa, socket (Open MPI also accepts "board"; we take it as node-wide).
func ParseBindTo(s string) (BindPolicy, error) {
	if s == "" {
		return BindPolicy{To: topology.Core}, nil
	}
	head, _, _ := strings.Cut(strings.ToLower(s), ":")
	if head == "none" {
		return BindPolicy{None: true, Explicit: true}, nil
	}
	k, err := topology.ParseKind(head)
	if err != nil {
		return BindPolicy{}, fmt.Errorf("--bind-to %q: %w (or none)", s, err)
	}
	return BindPolicy{To: k, Explicit: true}, nil
}

// Plan is where every rank runs and what it is bound to.
type Plan struct {
	Hosts    []PlanHost
	Ranks    []PlacedRank
	Warnings []string
	PE       int // cores (or hardware threads) per rank
}

// PlanHost is one host of the plan.
type PlanHost struct {
	Name           string
	Topology       *topology.Topology
	Ranks          []int // world ranks here, in local-rank order
	Oversubscribed bool  // more ranks than cores (or slots)
}

// PlacedRank is one rank's place.
type PlacedRank struct {
	Rank      int
	Host      int
	LocalRank int
	Cpus      []int // binding; nil when unbound
}

// planRequest is what a plan is made from.
type planRequest struct {
	hosts         []HostSpec
	topos         []*topology.Topology // per host
	np            int                  // 0: from slots or ppr
	npernode      int
	mapBy         MapPolicy
	bindTo        BindPolicy
	oversubscribe bool
	// defaultHosts: no allocation was given; the local host's cores are
	// a guide, not a limit (as MPICH), so more ranks run oversubscribed
	// with a warning instead of failing.
	defaultHosts bool
}

// makePlan maps ranks to hosts and places, and chooses bindings.
func makePlan(req planRequest) (*Plan, error) {
	if req.mapBy.By == "" {
		req.mapBy.By = "slot"
	}
	pe := max(req.mapBy.PE, 1)
	over := req.oversubscribe || req.mapBy.Oversubscribe
	p := &Plan{Hosts: make([]PlanHost, len(req.hosts)), PE: pe}
	places := make([][][]int, len(req.hosts))
	slots := make([]int, len(req.hosts))
	totalSlots := 0
	for i, h := range req.hosts {
		t := req.topos[i]
		p.Hosts[i] = PlanHost{Name: h.Name, Topology: t}
		var err error
		places[i], err = hostPlaces(t, req.mapBy, pe)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		slots[i] = h.Slots
		if slots[i] == 0 {
			slots[i] = len(places[i])
			if req.mapBy.By == "ppr" {
				slots[i] = req.mapBy.PPR * len(t.Objects(req.mapBy.PPRObject))
			}
		}
		totalSlots += slots[i]
	}

	counts := make([]int, len(req.hosts))
	np := req.np
	switch {
	case req.mapBy.By == "ppr" || req.npernode > 0:
		per := func(i int) int {
			if req.npernode > 0 {
				return req.npernode
			}
			return req.mapBy.PPR * len(req.topos[i].Objects(req.mapBy.PPRObject))
		}
		sum := 0
		for i := range req.hosts {
			counts[i] = per(i)
			sum += counts[i]
		}
		if np == 0 {
			np = sum
		}
		if np > sum {
			return nil, fmt.Errorf("asked for %d ranks, but the mapping places at most %d (%s)", np, sum, describePer(req))
		}
		left := np
		for i := range counts {
			counts[i] = min(counts[i], left)
			left -= counts[i]
		}
		for i := range counts {
			if counts[i] > distinctPlaces(places[i]) && !over {
				return nil, fmt.Errorf("%s puts %d ranks on %s, which has %d %s (%s); add --oversubscribe to share them",
					describePer(req), counts[i], req.hosts[i].Name, distinctPlaces(places[i]), placeNoun(req.mapBy, pe),
					req.topos[i].Summary())
			}
		}
	default:
		if np == 0 {
			np = totalSlots
		}
		if np > totalSlots && !over && !req.defaultHosts {
			return nil, fmt.Errorf("asked for %d ranks, but the hosts offer %d slots (%s); add --oversubscribe to run more ranks than slots",
				np, totalSlots, describeSlots(req.hosts, slots))
		}
		if req.mapBy.By == "node" {
			for r, h := 0, 0; r < np; h = (h + 1) % len(counts) {
				if counts[h] < slots[h] || np > totalSlots {
					counts[h]++
					r++
				}
			}
		} else {
			left := np
			for i := range counts {
				counts[i] = min(slots[i], left)
				left -= counts[i]
			}
			for h := 0; left > 0; h = (h + 1) % len(counts) {
				counts[h]++
				left--
			}
		}
	}
	if pe > 1 && !over {
		// Cores per rank were asked for: running the ranks unbound on
		// fewer cores would not give them (Open MPI refuses too).
		for i, n := range counts {
			if have := distinctPlaces(places[i]); n > have {
				return nil, fmt.Errorf("%d ranks of %d cores each do not fit %s, which has %d cores (%s): use fewer ranks or fewer cores per rank (--cpus-per-rank), or --oversubscribe to run them unbound",
					n, pe, req.hosts[i].Name, have*pe, req.topos[i].Summary())
			}
		}
	}
	for i, h := range req.hosts {
		if h.MaxSlots > 0 && counts[i] > h.MaxSlots {
			return nil, fmt.Errorf("host %s would get %d ranks, more than its max_slots=%d", h.Name, counts[i], h.MaxSlots)
		}
	}

	// Ranks, host after host (by node: round robin).
	p.Ranks = make([]PlacedRank, np)
	assign := func(r, h int) {
		lr := len(p.Hosts[h].Ranks)
		p.Hosts[h].Ranks = append(p.Hosts[h].Ranks, r)
		p.Ranks[r] = PlacedRank{Rank: r, Host: h, LocalRank: lr}
	}
	if req.mapBy.By == "node" {
		given := make([]int, len(counts))
		for r, h := 0, 0; r < np; h = (h + 1) % len(counts) {
			if given[h] < counts[h] {
				given[h]++
				assign(r, h)
				r++
			}
		}
	} else {
		r := 0
		for h, n := range counts {
			for k := 0; k < n; k++ {
				assign(r, h)
				r++
			}
		}
	}

	// Bindings.
	for h := range p.Hosts {
		host := &p.Hosts[h]
		n := len(host.Ranks)
		if n == 0 {
			continue
		}
		pl := places[h]
		distinct := distinctPlaces(pl)
		host.Oversubscribed = n > distinct
		if req.bindTo.None {
			continue
		}
		if !req.bindTo.Explicit {
			if host.Oversubscribed {
				if pe <= 1 && n%distinct == 0 && distinct == len(pl) {
					// An even share: rank i on place i mod the places, so
					// that every place runs the same number of ranks and a
					// rank stays with its cache and its neighbours. 4 ranks
					// on 2 cores, 7 interleaved runs (BENCHMARKS.md): an
					// 8-byte Barrier 4.5 against 6.3 us unbound, Alltoall
					// 4.1 against 5.5 (Open MPI measured the same bound or
					// not). An uneven share, or places of several cores
					// (--cpus-per-rank), run unbound, so the kernel can
					// even out what each rank gets.
					for _, r := range host.Ranks {
						p.Ranks[r].Cpus = pl[p.Ranks[r].LocalRank%len(pl)]
					}
					p.Warnings = append(p.Warnings, fmt.Sprintf("%d ranks on %s, which has %d %s: each runs %d ranks, bound round robin (--bind-to none: unbound), which yield the cpu while they wait",
						n, host.Name, len(pl), placeNoun(req.mapBy, pe), n/distinct))
					continue
				}
				p.Warnings = append(p.Warnings, fmt.Sprintf("%d ranks on %s, which has %d %s: ranks run unbound and yield the cpu while they wait",
					n, host.Name, len(pl), placeNoun(req.mapBy, pe)))
				continue
			}
			for _, r := range host.Ranks {
				p.Ranks[r].Cpus = pl[p.Ranks[r].LocalRank]
			}
			continue
		}
		objs := host.Topology.Objects(req.bindTo.To)
		used := map[int]int{}
		for _, r := range host.Ranks {
			place := pl[p.Ranks[r].LocalRank%len(pl)]
			cpus := bindingFor(place, req.bindTo.To, objs)
			p.Ranks[r].Cpus = cpus
			used[cpus[0]]++
		}
		if !over && bindingOverloaded(used, req.bindTo.To, pe) {
			return nil, fmt.Errorf("--bind-to %s puts more than one rank on a %s of %s (%d ranks, %s); add --oversubscribe to share, or use --bind-to none",
				req.bindTo.To, req.bindTo.To, host.Name, n, host.Topology.Summary())
		}
	}
	return p, nil
}

// bindingOverloaded reports whether core or hwthread bindings share an
// object (larger objects are meant to be shared).
func bindingOverloaded(used map[int]int, k topology.Kind, pe int) bool {
	if k != topology.Core && k != topology.HWThread {
		return false
	}
	for _, n := range used {
		if n > 1 {
			return true
		}
	}
	return false
}

// bindingFor returns the cpus a rank at place is bound to under kind k:
// the place itself for core (it may span pe cores), its first hardware
// thread for hwthread, else the whole object containing the place.
func bindingFor(place []int, k topology.Kind, objs [][]int) []int {
	switch k {
	case topology.Core:
		return place
	case topology.HWThread:
		return place[:1]
	}
	for _, o := range objs {
		for _, c := range o {
			if c == place[0] {
				return o
			}
		}
	}
	return place
}

// hostPlaces lists the places of a host in the order ranks take them: each
// place is the cpus of pe cores (or hardware threads when mapping by
// hwthread). Mapping by socket, numa or l3cache takes places from each
// object in turn; ppr takes the objects' places object by object.
func hostPlaces(t *topology.Topology, m MapPolicy, pe int) ([][]int, error) {
	unitKind := topology.Core
	units := t.Objects(topology.Core)
	if m.By == string(topology.HWThread) || m.By == "ppr" && m.PPRObject == topology.HWThread {
		// Hardware threads in tree order: the threads of core 0, then of
		// core 1, ... (Linux numbers siblings far apart).
		unitKind = topology.HWThread
		units = hwthreadsByCore(t)
	}
	var objKind topology.Kind
	interleave := false
	switch m.By {
	case "ppr":
		objKind = m.PPRObject
	case string(topology.Socket), string(topology.NUMANode), string(topology.L3Cache):
		objKind, interleave = topology.Kind(m.By), true
	default:
		objKind = topology.Machine
	}
	objs := t.Objects(objKind)
	// Units of each object, in order.
	perObj := make([][][]int, len(objs))
	for _, u := range units {
		for i, o := range objs {
			if containsCPU(o, u[0]) {
				perObj[i] = append(perObj[i], u)
				break
			}
		}
	}
	// Chunk each object's units into places of pe units.
	chunks := make([][][]int, len(objs))
	for i, us := range perObj {
		for k := 0; k+pe <= len(us); k += pe {
			var place []int
			for _, u := range us[k : k+pe] {
				place = append(place, u...)
			}
			chunks[i] = append(chunks[i], place)
		}
	}
	var places [][]int
	if m.By == "ppr" {
		// N ranks per object: the object's first N places, object after
		// object; an object with fewer places repeats them (oversubscribed).
		for _, cs := range chunks {
			if len(cs) == 0 {
				continue
			}
			for k := 0; k < m.PPR; k++ {
				places = append(places, cs[k%len(cs)])
			}
		}
	} else if interleave {
		for k := 0; ; k++ {
			took := false
			for _, cs := range chunks {
				if k < len(cs) {
					places = append(places, cs[k])
					took = true
				}
			}
			if !took {
				break
			}
		}
	} else {
		for _, cs := range chunks {
			places = append(places, cs...)
		}
	}
	if len(places) == 0 {
		return nil, fmt.Errorf("no place for a rank of %d %s (%s): ask for fewer cores per rank (--cpus-per-rank, or pe= of --map-by)",
			pe, map[bool]string{true: "hardware threads", false: "cores"}[unitKind == topology.HWThread], t.Summary())
	}
	return places, nil
}

// hwthreadsByCore lists every hardware thread as a unit, core by core.
func hwthreadsByCore(t *topology.Topology) [][]int {
	var units [][]int
	for _, core := range t.Objects(topology.Core) {
		for _, c := range core {
			units = append(units, []int{c})
		}
	}
	return units
}

// distinctPlaces counts the places of a host (ppr repeats them when an
// object has fewer places than ranks).
func distinctPlaces(places [][]int) int {
	seen := map[int]bool{}
	for _, p := range places {
		seen[p[0]] = true
	}
	return len(seen)
}

func containsCPU(cpus []int, c int) bool {
	for _, x := range cpus {
		if x == c {
			return true
		}
	}
	return false
}

func placeNoun(m MapPolicy, pe int) string {
	unit := "cores"
	if m.By == string(topology.HWThread) {
		unit = "hardware threads"
	}
	if pe > 1 {
		return fmt.Sprintf("places of %d %s", pe, unit)
	}
	return unit
}

func describePer(req planRequest) string {
	if req.npernode > 0 {
		return fmt.Sprintf("-npernode %d", req.npernode)
	}
	return fmt.Sprintf("--map-by ppr:%d:%s", req.mapBy.PPR, req.mapBy.PPRObject)
}

func describeSlots(hosts []HostSpec, slots []int) string {
	var parts []string
	for i, h := range hosts {
		parts = append(parts, fmt.Sprintf("%s:%d", h.Name, slots[i]))
	}
	return strings.Join(parts, ", ")
}

// BindingReport renders one line per rank: where it runs, the cpus it is
// bound to, and a map of the host with one character per hardware thread
// (B: bound, .: not), cores separated by '/', one bracket per socket.
func (p *Plan) BindingReport() []string {
	var lines []string
	for _, r := range p.Ranks {
		h := p.Hosts[r.Host]
		if len(r.Cpus) == 0 {
			lines = append(lines, fmt.Sprintf("[%s] rank %d: not bound", h.Name, r.Rank))
			continue
		}
		lines = append(lines, fmt.Sprintf("[%s] rank %d bound to cpus %s: %s", h.Name, r.Rank,
			topology.FormatList(r.Cpus), bindingMap(h.Topology, r.Cpus)))
	}
	return lines
}

func bindingMap(t *topology.Topology, cpus []int) string {
	var b strings.Builder
	for _, sock := range t.Objects(topology.Socket) {
		b.WriteByte('[')
		first := true
		for _, core := range t.Objects(topology.Core) {
			if !containsCPU(sock, core[0]) {
				continue
			}
			if !first {
				b.WriteByte('/')
			}
			first = false
			for _, c := range core {
				if containsCPU(cpus, c) {
					b.WriteByte('B')
				} else {
					b.WriteByte('.')
				}
			}
		}
		b.WriteByte(']')
	}
	return b.String()
}
