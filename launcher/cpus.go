package launcher

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// formatCPUs renders a cpu list compactly, as Linux does: "0-3,8,10-11".
func formatCPUs(cpus []int) string {
	if len(cpus) == 0 {
		return ""
	}
	c := slices.Clone(cpus)
	slices.Sort(c)
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
			fmt.Fprintf(&b, "-%d", c[j])
		}
		i = j + 1
	}
	return b.String()
}
