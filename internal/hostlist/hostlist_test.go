package hostlist

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"vm", []string{"vm"}},
		{"node[1-2]", []string{"node1", "node2"}},
		{"node[01-04,07],gpu-a[1-2]", []string{"node01", "node02", "node03", "node04", "node07", "gpu-a1", "gpu-a2"}},
		{"n[8-11]", []string{"n8", "n9", "n10", "n11"}},
		{"a,b,c", []string{"a", "b", "c"}},
		{"rack[1-2]-n[1-2]", []string{"rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"}},
		{"node[009-011]", []string{"node009", "node010", "node011"}},
		{"x[3]", []string{"x3"}},
	}
	for _, tc := range cases {
		got, err := Expand(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Expand(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"node[1-", "node]", "node[a-b]", "node[3-1]", "node[]", "n[1-2[3]]", "n[-3]", "n[0-99999999]"} {
		if _, err := Expand(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Expand(%q): %v", bad, err)
		}
	}
}

func TestExpandCounts(t *testing.T) {
	cases := []struct {
		in   string
		want []int
	}{
		{"2", []int{2}}, {"2(x2)", []int{2, 2}}, {"2,1", []int{2, 1}}, {"2(x3),1", []int{2, 2, 2, 1}}, {"16(x2),4,8(x1)", []int{16, 16, 4, 8}},
	}
	for _, tc := range cases {
		got, err := ExpandCounts(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ExpandCounts(%q) = %v, %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "2(3)", "2(x0)", "-1", "2(x", "1,,2", "1(x99999999)"} {
		if _, err := ExpandCounts(bad); err == nil {
			t.Errorf("ExpandCounts(%q) accepted", bad)
		}
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"node[01-04,07],gpu-a[1-2]", "a,b", "r[1-2]-n[3-4]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hs, err := Expand(s)
		if err == nil && len(hs) > MaxHosts {
			t.Fatalf("%d hosts", len(hs))
		}
	})
}

func FuzzExpandCounts(f *testing.F) {
	f.Add("2(x3),1")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ExpandCounts(s)
		if err == nil {
			for _, v := range c {
				if v < 0 {
					t.Fatal("negative count")
				}
			}
		}
	})
}
