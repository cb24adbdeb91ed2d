// Package hostlist reads Slurm's compressed notations: host lists such as
// "node[01-04,07],gpu-a[1-2]" (SLURM_JOB_NODELIST) and task counts such as
// "2(x3),1" (SLURM_TASKS_PER_NODE). Both come from the environment of a
// job, so malformed input gets an error that quotes it, and expansions are
// bounded.
package hostlist

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxHosts bounds an expansion (a list of a million names is a typo or an
// attack, not a cluster).
const MaxHosts = 1 << 20

// Expand expands a Slurm host list into host names, in order.
func Expand(list string) ([]string, error) {
	var out []string
	for _, item := range splitTop(list) {
		if item == "" {
			continue
		}
		names, err := expandItem(item)
		if err != nil {
			return nil, fmt.Errorf("host list %q: %w", list, err)
		}
		out = append(out, names...)
		if len(out) > MaxHosts {
			return nil, fmt.Errorf("host list %q names more than %d hosts", list, MaxHosts)
		}
	}
	return out, nil
}

// splitTop splits at commas outside brackets.
func splitTop(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// expandItem expands one name with any number of bracket groups, as a
// cartesian product ("rack[1-2]-n[1-2]" -> rack1-n1, rack1-n2, ...).
func expandItem(item string) ([]string, error) {
	open := strings.IndexByte(item, '[')
	if open < 0 {
		if strings.ContainsAny(item, "]") {
			return nil, fmt.Errorf("%q: ']' without '['", item)
		}
		return []string{item}, nil
	}
	end := strings.IndexByte(item[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("%q: '[' without ']'", item)
	}
	end += open
	prefix, ranges, rest := item[:open], item[open+1:end], item[end+1:]
	if strings.ContainsAny(ranges, "[") {
		return nil, fmt.Errorf("%q: nested brackets", item)
	}
	heads, err := expandRanges(ranges)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", item, err)
	}
	tails, err := expandItem(rest)
	if err != nil {
		return nil, err
	}
	if len(heads)*len(tails) > MaxHosts {
		return nil, fmt.Errorf("%q names more than %d hosts", item, MaxHosts)
	}
	out := make([]string, 0, len(heads)*len(tails))
	for _, h := range heads {
		for _, t := range tails {
			out = append(out, prefix+h+t)
		}
	}
	return out, nil
}

// expandRanges expands "01-04,07" into 01 02 03 04 07 (the width of the
// low end of a range keeps leading zeros).
func expandRanges(s string) ([]string, error) {
	var out []string
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if lo == "" || !digits(lo) || isRange && (hi == "" || !digits(hi)) {
			return nil, fmt.Errorf("bad range %q", r)
		}
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || b < a {
			return nil, fmt.Errorf("bad range %q", r)
		}
		if b-a >= MaxHosts || len(out)+(b-a+1) > MaxHosts {
			return nil, fmt.Errorf("range %q names more than %d hosts", r, MaxHosts)
		}
		width := len(lo)
		for n := a; n <= b; n++ {
			out = append(out, fmt.Sprintf("%0*d", width, n))
		}
	}
	return out, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ExpandCounts expands Slurm's per-node counts, "2(x3),1" -> [2 2 2 1].
func ExpandCounts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			return nil, fmt.Errorf("counts %q: empty item", s)
		}
		val, rep := part, "1"
		if i := strings.IndexByte(part, '('); i >= 0 {
			if !strings.HasPrefix(part[i:], "(x") || !strings.HasSuffix(part, ")") {
				return nil, fmt.Errorf("counts %q: bad repetition %q", s, part)
			}
			val, rep = part[:i], part[i+2:len(part)-1]
		}
		v, err1 := strconv.Atoi(val)
		n, err2 := strconv.Atoi(rep)
		if err1 != nil || err2 != nil || v < 0 || n < 1 || len(out)+n > MaxHosts {
			return nil, fmt.Errorf("counts %q: bad item %q", s, part)
		}
		for i := 0; i < n; i++ {
			out = append(out, v)
		}
	}
	return out, nil
}
