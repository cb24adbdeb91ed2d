package elem

import (
	"errors"
	"strings"
	"testing"
)

type particle struct {
	Pos, Vel [3]float64
	ID       int32
	Alive    bool
}

type named float64

type withString struct {
	ID   int
	Name string
}

type nested struct {
	P     particle
	Inner struct{ Next *int }
}

// TestCheck: fixed-size types without pointers travel; any pointer
// anywhere is refused, naming the field.
func TestCheck(t *testing.T) {
	for name, err := range map[string]error{
		"float64": Check[float64](), "particle": Check[particle](), "named": Check[named](),
		"array": Check[[4]particle](), "bool": Check[bool](), "empty struct": Check[struct{}](),
	} {
		if err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
	for _, tc := range []struct {
		err   error
		field string
	}{
		{Check[withString](), "field Name is a string"},
		{Check[nested](), "field Inner.Next is a ptr"},
		{Check[[]int](), "it is a slice"},
		{Check[map[int]int](), "it is a map"},
		{Check[any](), "it is a interface"},
		{Check[[2]string](), "field [] is a string"},
	} {
		if !errors.Is(tc.err, ErrPointer) || !strings.Contains(tc.err.Error(), tc.field) {
			t.Errorf("got %v, want ErrPointer naming %q", tc.err, tc.field)
		}
	}
	if Size[particle]() != 56 {
		t.Errorf("Size[particle] = %d, want 56 (padding included)", Size[particle]())
	}
}
