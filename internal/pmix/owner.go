package pmix

import (
	"strconv"
	"strings"
)

// Owner is the rank whose key key is (see Get).
func Owner(key string) int {
	i := strings.LastIndexAny(key, "/-")
	if n, err := strconv.Atoi(key[i+1:]); err == nil && n >= 0 {
		return n
	}
	return 0
}
