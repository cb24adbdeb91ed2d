//go:build linux

package launcher

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/parley-hpc/parley/internal/topology"
)

func topo(t *testing.T, name string) *topology.Topology {
	t.Helper()
	tp, err := topology.Read("../internal/topology/testdata/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// bindings returns each rank's host index and cpus as "h:cpus".
func bindings(p *Plan) []string {
	var out []string
	for _, r := range p.Ranks {
		out = append(out, fmt.Sprintf("%d:%s", r.Host, topology.FormatList(r.Cpus)))
	}
	return out
}

func TestPlans(t *testing.T) {
	vm, server, numa := "vm-1s2c", "server-2s4c2t", "numa-1s8c-offline"
	cases := []struct {
		name     string
		hosts    []string // topologies, one host each
		slots    []int
		np       int
		npn      int
		mapBy    string
		bindTo   string
		over     bool
		defaults bool
		want     []string // "host:cpus" per rank
		warn     string
	}{
		{name: "vm default", hosts: []string{vm}, defaults: true, want: []string{"0:0", "0:1"}},
		{name: "vm oversubscribed runs unbound", hosts: []string{vm}, np: 3, defaults: true,
			want: []string{"0:", "0:", "0:"}, warn: "3 ranks on vm-1s2c, which has 2 cores"},
		{name: "vm evenly oversubscribed shares cores round robin", hosts: []string{vm}, np: 4, defaults: true,
			want: []string{"0:0", "0:1", "0:0", "0:1"}, warn: "4 ranks on vm-1s2c, which has 2 cores: each runs 2 ranks, bound round robin"},
		{name: "vm evenly oversubscribed, bind none", hosts: []string{vm}, np: 4, defaults: true, bindTo: "none",
			want: []string{"0:", "0:", "0:", "0:"}},
		{name: "server evenly oversubscribed binds cores with their threads", hosts: []string{server}, np: 16, defaults: true,
			want: []string{"0:0,8", "0:1,9", "0:2,10", "0:3,11", "0:4,12", "0:5,13", "0:6,14", "0:7,15",
				"0:0,8", "0:1,9", "0:2,10", "0:3,11", "0:4,12", "0:5,13", "0:6,14", "0:7,15"}, warn: "16 ranks on server-2s4c2t, which has 8 cores: each runs 2 ranks"},
		{name: "vm bind none", hosts: []string{vm}, np: 2, bindTo: "none", want: []string{"0:", "0:"}},
		{name: "server by core binds cores with their threads", hosts: []string{server}, np: 3,
			want: []string{"0:0,8", "0:1,9", "0:2,10"}},
		{name: "server by socket alternates", hosts: []string{server}, np: 4, mapBy: "socket",
			want: []string{"0:0,8", "0:4,12", "0:1,9", "0:5,13"}},
		{name: "server bind to socket", hosts: []string{server}, np: 2, mapBy: "socket", bindTo: "socket",
			want: []string{"0:0-3,8-11", "0:4-7,12-15"}},
		{name: "server by hwthread", hosts: []string{server}, np: 16, mapBy: "hwthread",
			want: []string{"0:0", "0:8", "0:1", "0:9", "0:2", "0:10", "0:3", "0:11", "0:4", "0:12", "0:5", "0:13", "0:6", "0:14", "0:7", "0:15"}},
		{name: "server ppr 2 per socket", hosts: []string{server}, mapBy: "ppr:2:socket",
			want: []string{"0:0,8", "0:1,9", "0:4,12", "0:5,13"}},
		{name: "server pe=2", hosts: []string{server}, np: 4, mapBy: "slot:pe=2",
			want: []string{"0:0-1,8-9", "0:2-3,10-11", "0:4-5,12-13", "0:6-7,14-15"}},
		{name: "server by socket, pe=2, bind numa", hosts: []string{server}, np: 2, mapBy: "socket:PE=2", bindTo: "numa",
			want: []string{"0:0-3,8-11", "0:4-7,12-15"}},
		{name: "numa box skips offline cpus", hosts: []string{numa}, np: 6,
			want: []string{"0:0", "0:1", "0:2", "0:4", "0:5", "0:7"}},
		{name: "numa box by numa", hosts: []string{numa}, np: 4, mapBy: "numa",
			want: []string{"0:0", "0:4", "0:1", "0:5"}},
		{name: "numa box bind l3", hosts: []string{numa}, np: 2, mapBy: "l3cache", bindTo: "l3cache",
			want: []string{"0:0-2", "0:4-5,7"}},
		{name: "two hosts by slot", hosts: []string{vm, server}, slots: []int{2, 3}, np: 5,
			want: []string{"0:0", "0:1", "1:0,8", "1:1,9", "1:2,10"}},
		{name: "two hosts by node", hosts: []string{vm, server}, slots: []int{2, 3}, np: 5, mapBy: "node",
			want: []string{"0:0", "1:0,8", "0:1", "1:1,9", "1:2,10"}},
		{name: "npernode", hosts: []string{vm, vm}, npn: 1,
			want: []string{"0:0", "1:0"}},
		{name: "oversubscribe with explicit slots", hosts: []string{vm}, slots: []int{1}, np: 3, over: true,
			want: []string{"0:", "0:", "0:"}, warn: "3 ranks on vm-1s2c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := planRequest{np: tc.np, npernode: tc.npn, oversubscribe: tc.over, defaultHosts: tc.defaults}
			var err error
			if req.mapBy, err = ParseMapBy(tc.mapBy); err != nil {
				t.Fatal(err)
			}
			if req.bindTo, err = ParseBindTo(tc.bindTo); err != nil {
				t.Fatal(err)
			}
			for i, h := range tc.hosts {
				hs := HostSpec{Name: h}
				if tc.slots != nil {
					hs.Slots = tc.slots[i]
				}
				req.hosts = append(req.hosts, hs)
				req.topos = append(req.topos, topo(t, h))
			}
			p, err := makePlan(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := bindings(p); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("bindings %v\nwant     %v", got, tc.want)
			}
			if tc.warn != "" && (len(p.Warnings) == 0 || !strings.Contains(p.Warnings[0], tc.warn)) {
				t.Fatalf("warnings %q, want %q", p.Warnings, tc.warn)
			}
			if tc.warn == "" && len(p.Warnings) > 0 {
				t.Fatalf("unexpected warnings %q", p.Warnings)
			}
			for r, pr := range p.Ranks {
				if pr.Rank != r || p.Hosts[pr.Host].Ranks[pr.LocalRank] != r {
					t.Fatalf("rank %d placed inconsistently: %+v", r, pr)
				}
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	cases := []struct {
		name   string
		host   string
		slots  int
		np     int
		mapBy  string
		bindTo string
		want   []string // fragments of the message
	}{
		{"ppr beyond the cores", "vm-1s2c", 0, 0, "ppr:8:socket", "", []string{"ppr:8:socket", "8 ranks", "2 cores", "--oversubscribe"}},
		{"more ranks than slots", "vm-1s2c", 2, 3, "", "", []string{"asked for 3 ranks", "2 slots", "--oversubscribe"}},
		{"bind to core, too many ranks", "vm-1s2c", 4, 3, "", "core", []string{"--bind-to core", "--oversubscribe", "--bind-to none"}},
		{"ppr more than asked allows", "vm-1s2c", 0, 5, "ppr:1:socket", "", []string{"asked for 5 ranks", "at most 1"}},
		{"pe larger than the host", "vm-1s2c", 0, 1, "slot:pe=4", "", []string{"no place for a rank of 4 cores", "2 cores"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mapBy, err := ParseMapBy(tc.mapBy)
			if err != nil {
				t.Fatal(err)
			}
			bindTo, err := ParseBindTo(tc.bindTo)
			if err != nil {
				t.Fatal(err)
			}
			_, err = makePlan(planRequest{hosts: []HostSpec{{Name: "vm", Slots: tc.slots}}, topos: []*topology.Topology{topo(t, tc.host)},
				np: tc.np, mapBy: mapBy, bindTo: bindTo})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	for _, bad := range []string{"bogus", "ppr:x:socket", "ppr:2", "ppr:2:galaxy", "core:pe=0", "core:wat"} {
		if _, err := ParseMapBy(bad); err == nil {
			t.Errorf("--map-by %q parsed", bad)
		}
	}
	if _, err := ParseBindTo("galaxy"); err == nil || !strings.Contains(err.Error(), "known: hwthread, core") {
		t.Errorf("--bind-to galaxy: %v", err)
	}
}

func TestBindingReport(t *testing.T) {
	p, err := makePlan(planRequest{hosts: []HostSpec{{Name: "srv"}}, topos: []*topology.Topology{topo(t, "server-2s4c2t")},
		np: 2, mapBy: MapPolicy{By: "socket"}, bindTo: BindPolicy{To: topology.Core}})
	if err != nil {
		t.Fatal(err)
	}
	got := p.BindingReport()
	want := []string{
		"[srv] rank 0 bound to cpus 0,8: [BB/../../..][../../../..]",
		"[srv] rank 1 bound to cpus 4,12: [../../../..][BB/../../..]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHostfiles(t *testing.T) {
	good := `# a mix of syntaxes
node1 slots=4 max_slots=8
node2:2
node3
node1 slots=2   # again: adds slots
`
	hs, err := ParseHostfile("hosts", strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []HostSpec{{Name: "node1", Slots: 6, MaxSlots: 8}, {Name: "node2", Slots: 2}, {Name: "node3"}}
	if !reflect.DeepEqual(hs, want) {
		t.Fatalf("%+v", hs)
	}
	for _, tc := range []struct{ text, want string }{
		{"node1 slots=x", "hosts line 1"},
		{"\n\nnode1 colour=red", "hosts line 3: unknown attribute"},
		{"node1:0", "line 1"},
		{"node1 slots=9 max_slots=2", "exceeds max_slots"},
		{"# nothing", "lists no hosts"},
	} {
		if _, err := ParseHostfile("hosts", strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
	hl, err := ParseHostList([]string{"a,b:3", "a"})
	if err != nil || !reflect.DeepEqual(hl, []HostSpec{{Name: "a", Slots: 2}, {Name: "b", Slots: 3}}) {
		t.Fatalf("host list: %+v %v", hl, err)
	}
}

func FuzzHostfile(f *testing.F) {
	f.Add("node1 slots=4\nnode2:2\n")
	f.Fuzz(func(t *testing.T, s string) {
		hs, err := ParseHostfile("f", strings.NewReader(s))
		if err == nil {
			for _, h := range hs {
				if h.Name == "" || h.Slots < 0 {
					t.Fatalf("bad host %+v", h)
				}
			}
		}
	})
}

// TestCoresPerRankRefused: ranks of several cores that do not fit a host
// are refused, naming what exists and the way out (they ran unbound in
// silence on default hosts); with --oversubscribe they run unbound.
func TestCoresPerRankRefused(t *testing.T) {
	vm := topo(t, "vm-1s2c")
	req := planRequest{hosts: []HostSpec{{Name: "vm"}}, np: 2, mapBy: MapPolicy{By: "slot", PE: 2},
		topos: []*topology.Topology{vm}, defaultHosts: true}
	if _, err := makePlan(req); err == nil || !strings.Contains(err.Error(), "2 ranks of 2 cores each do not fit vm, which has 2 cores") {
		t.Fatalf("2 ranks of 2 cores on 2 cores: %v", err)
	}
	req.oversubscribe = true
	p, err := makePlan(req)
	if err != nil || !p.Hosts[0].Oversubscribed || p.Ranks[0].Cpus != nil {
		t.Fatalf("with --oversubscribe: %v %+v", err, p)
	}
}
