package commtest

import (
	"strings"
	"testing"

	"github.com/parley-hpc/parley/comm"
)

// TestCheckOrderCatches makes sure the model rejects an overtake: two
// messages from rank 1 with tag 5, the later one taken by the receive
// posted first.
func TestCheckOrderCatches(t *testing.T) {
	early := msg{src: 1, seq: 0, tag: 5}
	late := msg{src: 1, seq: 1, tag: 5}
	r0 := &posted{order: 0, src: 1, tag: comm.AnyTag, target: late}
	r1 := &posted{order: 1, src: 1, tag: 5, target: early}
	matched := map[int]map[int]int{1: {0: 1, 1: 0}}
	err := checkOrder([]*posted{r0, r1}, []msg{early, late}, matched)
	if err == nil || !strings.Contains(err.Error(), "overtook") {
		t.Fatalf("overtake not caught: %v", err)
	}
	// The legal outcome passes.
	r0.target, r1.target = early, late
	if err := checkOrder([]*posted{r0, r1}, []msg{early, late}, map[int]map[int]int{1: {0: 0, 1: 1}}); err != nil {
		t.Fatal(err)
	}
}
