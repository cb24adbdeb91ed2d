package coll

import "testing"

// TestCheckTellsArgumentsApart: calls that differ in one argument get
// different check words, and equal calls equal ones.
func TestCheckTellsArgumentsApart(t *testing.T) {
	base := Args{Root: 0, Op: "sum", ElemSize: 4, Count: 2}
	seen := map[uint32]Args{Check(Allreduce, base): base}
	for _, a := range []Args{
		{Root: 1, Op: "sum", ElemSize: 4, Count: 2},
		{Root: 0, Op: "max", ElemSize: 4, Count: 2},
		{Root: 0, Op: "sum", ElemSize: 8, Count: 2},
		{Root: 0, Op: "sum", ElemSize: 4, Count: 3},
		{Root: 0, Op: "sum", ElemSize: 4, Count: 1 << 32},
		{Root: 0, Op: "", ElemSize: 4, Count: 2},
		{Root: 2, Op: "sum", ElemSize: 2, Count: 2},
		{Root: 0, Op: "sum", ElemSize: 4, Count: 2, Counts: CountsDigest([]int{2, 0})},
		{Root: 0, Op: "sum", ElemSize: 4, Count: 2, Counts: CountsDigest([]int{0, 2})},
		{Root: 0, Op: "sum", ElemSize: 4, Count: 2, Counts: CountsDigest([]int{1, 1})},
	} {
		c := Check(Allreduce, a)
		if prev, ok := seen[c]; ok {
			t.Errorf("%+v and %+v share check word %#x", a, prev, c)
		}
		seen[c] = a
	}
	if Check(Allreduce, base) != Check(Allreduce, base) || KindOf(Check(Reduce, base)) != Reduce {
		t.Fatal("check words are not a function of the call")
	}
}
