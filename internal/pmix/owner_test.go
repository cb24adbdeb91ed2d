package pmix

import "testing"

func TestOwner(t *testing.T) {
	for key, want := range map[string]int{"card/3": 3, "parley/node-12": 12, "parley/secret": 0, "card/": 0, "x": 0, "a-b/7": 7} {
		if got := Owner(key); got != want {
			t.Errorf("Owner(%q) = %d, want %d", key, got, want)
		}
	}
}
