//go:build linux

package launcher

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSchedulerFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "f")
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	hs, err := readSlotLines(write("b\na\nb\n\na\nb\n"), "PBS_NODEFILE")
	if want := []HostSpec{{Name: "b", Slots: 3}, {Name: "a", Slots: 2}}; err != nil || !reflect.DeepEqual(hs, want) {
		t.Errorf("slot lines: %v %v", hs, err)
	}
	if _, err := readSlotLines(write("a b\n"), "PBS_NODEFILE"); err == nil {
		t.Error("a line with a space was taken for a host")
	}
	if _, err := readSlotLines(write("\n"), "PBS_NODEFILE"); err == nil {
		t.Error("an empty node file was taken")
	}
	hs, err = parseMCPUHosts("n1 4 n2 2")
	if want := []HostSpec{{Name: "n1", Slots: 4}, {Name: "n2", Slots: 2}}; err != nil || !reflect.DeepEqual(hs, want) {
		t.Errorf("LSB_MCPU_HOSTS: %v %v", hs, err)
	}
	for _, bad := range []string{"n1", "n1 x", "n1 0", ""} {
		if _, err := parseMCPUHosts(bad); err == nil {
			t.Errorf("LSB_MCPU_HOSTS=%q taken", bad)
		}
	}
	hs, err = readPEHostfile(write("n1 2 all.q@n1 UNDEFINED\nn2 1 all.q@n2 <NULL>\n"))
	if want := []HostSpec{{Name: "n1", Slots: 2}, {Name: "n2", Slots: 1}}; err != nil || !reflect.DeepEqual(hs, want) {
		t.Errorf("PE_HOSTFILE: %v %v", hs, err)
	}
	if _, err := readPEHostfile(write("n1\n")); err == nil {
		t.Error("a PE_HOSTFILE line without slots was taken")
	}
}
