//go:build linux

package launcher

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// HostSpec is one host of the allocation and its slots.
type HostSpec struct {
	Name     string
	Slots    int // ranks it takes before it is oversubscribed; 0: its cpu count
	MaxSlots int // hard limit even when oversubscribing; 0: none
}

// ParseHostList parses -H/--host values: "host1,host2:4" (a host may
// repeat; each mention without a count adds one slot, as Open MPI does).
func ParseHostList(values []string) ([]HostSpec, error) {
	var hosts []HostSpec
	index := map[string]int{}
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			name, slots := item, 1
			explicit := false
			if i := strings.LastIndexByte(item, ':'); i >= 0 && !strings.Contains(item[i+1:], "]") {
				n, err := strconv.Atoi(item[i+1:])
				if err != nil || n < 1 {
					return nil, fmt.Errorf("host %q: slot count %q is not a positive number", item, item[i+1:])
				}
				name, slots, explicit = item[:i], n, true
			}
			if name == "" {
				return nil, fmt.Errorf("host %q: empty host name", item)
			}
			if i, ok := index[name]; ok {
				if explicit {
					hosts[i].Slots = slots
				} else {
					hosts[i].Slots++
				}
				continue
			}
			index[name] = len(hosts)
			hosts = append(hosts, HostSpec{Name: name, Slots: slots})
		}
	}
	return hosts, nil
}

// ParseHostfile reads a hostfile in Open MPI's syntax ("host slots=4
// max_slots=8", "#" comments) or Hydra's ("host:4"), which may be mixed.
// Errors name the file and line.
func ParseHostfile(name string, r io.Reader) ([]HostSpec, error) {
	var hosts []HostSpec
	index := map[string]int{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("hostfile %s line %d: %s", name, line, fmt.Sprintf(format, args...))
		}
		h := HostSpec{Name: fields[0]}
		if i := strings.LastIndexByte(h.Name, ':'); i >= 0 {
			n, err := strconv.Atoi(h.Name[i+1:])
			if err != nil || n < 1 {
				return nil, bad("%q: slot count after ':' is not a positive number", fields[0])
			}
			h.Name, h.Slots = h.Name[:i], n
		}
		if h.Name == "" {
			return nil, bad("empty host name")
		}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			switch k {
			case "slots", "cpu", "cpus", "max_slots", "max-slots":
			default:
				return nil, bad("unknown attribute %q (known: slots, max_slots)", k)
			}
			n, err := strconv.Atoi(v)
			if !ok || err != nil || n < 1 {
				return nil, bad("%q: expected %s=N with N >= 1", f, k)
			}
			if k == "max_slots" || k == "max-slots" {
				h.MaxSlots = n
			} else {
				h.Slots = n
			}
		}
		if h.MaxSlots > 0 && h.Slots > h.MaxSlots {
			return nil, bad("slots=%d exceeds max_slots=%d", h.Slots, h.MaxSlots)
		}
		if i, ok := index[h.Name]; ok {
			hosts[i].Slots += max(h.Slots, 1)
			continue
		}
		index[h.Name] = len(hosts)
		hosts = append(hosts, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("hostfile %s: %w", name, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("hostfile %s lists no hosts", name)
	}
	return hosts, nil
}

// IsLocalHost reports whether name is this machine: "localhost", a
// loopback address, the host name (long or short), or one of its addresses.
func IsLocalHost(name string) bool {
	if name == "localhost" || name == "" {
		return true
	}
	if ip := net.ParseIP(name); ip != nil {
		if ip.IsLoopback() {
			return true
		}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
		return false
	}
	h, err := os.Hostname()
	if err != nil {
		return false
	}
	short, _, _ := strings.Cut(h, ".")
	nshort, _, _ := strings.Cut(name, ".")
	return name == h || name == short || (nshort == short && strings.Contains(name, "."))
}
