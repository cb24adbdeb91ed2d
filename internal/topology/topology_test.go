package topology

import (
	"reflect"
	"testing"
)

func TestRead(t *testing.T) {
	cases := []struct {
		dir                           string
		allowed                       []int
		sockets, numa, cores, threads int
		l3                            int
		firstCore                     []int
	}{
		{"testdata/vm-1s2c", nil, 1, 1, 2, 2, 1, []int{0}},
		{"testdata/server-2s4c2t", nil, 2, 2, 8, 16, 2, []int{0, 8}},
		{"testdata/numa-1s8c-offline", nil, 1, 2, 6, 6, 2, []int{0}},
		// A cgroup or Slurm allowing half of the server: socket 1 only.
		{"testdata/server-2s4c2t", []int{4, 5, 6, 7, 12, 13, 14, 15}, 1, 1, 4, 8, 1, []int{4, 12}},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			topo, err := Read(tc.dir, tc.allowed)
			if err != nil {
				t.Fatal(err)
			}
			got := []int{len(topo.Objects(Socket)), len(topo.Objects(NUMANode)), len(topo.Objects(Core)), len(topo.CPUs), len(topo.Objects(L3Cache))}
			want := []int{tc.sockets, tc.numa, tc.cores, tc.threads, tc.l3}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("sockets, numa, cores, threads, l3 = %v, want %v (%s)", got, want, topo.Summary())
			}
			if c := topo.Objects(Core)[0]; !reflect.DeepEqual(c, tc.firstCore) {
				t.Fatalf("first core %v, want %v", c, tc.firstCore)
			}
			back, err := Parse(topo.Append(nil))
			if err != nil || !reflect.DeepEqual(back, topo) {
				t.Fatalf("encoding round trip: %v", err)
			}
		})
	}
	if _, err := Read("testdata/vm-1s2c", []int{5}); err == nil {
		t.Fatal("no usable cpu was accepted")
	}
}

func TestReadLocal(t *testing.T) {
	topo, err := ReadLocal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.CPUs) == 0 || topo.NumCores() == 0 {
		t.Fatalf("empty topology: %s", topo.Summary())
	}
}

func TestLists(t *testing.T) {
	for _, s := range []string{"0", "0-3", "0-3,8,10-11", ""} {
		l, err := ParseList(s)
		if err != nil || FormatList(l) != s {
			t.Errorf("%q -> %v -> %q (%v)", s, l, FormatList(l), err)
		}
	}
	for _, bad := range []string{"x", "3-1", "-1", "0-999999"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	t, _ := Read("testdata/server-2s4c2t", nil)
	f.Add(t.Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b)
	})
}
