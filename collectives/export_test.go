package collectives

import "math"

// Algorithm selects one algorithm of each collective, for the matrix
// tests: the size thresholds that choose between algorithms are set so
// that one side always wins.
type Algorithm struct {
	Name    string
	set     func()
	restore func()
}

func thresholds(family string) func() {
	old := [9]int{bcastScatterMin, allreduceLargeMin, gatherBinomialMax, allgatherRingMin, reduceLargeMin, reduceRabenseifnerMaxRanks,
		reduceFlatMax, reduceFlatMaxRanks, allgatherDirectMaxRanks}
	switch family {
	case "short", "tree":
		// Always the short-message algorithms; Reduce's flat one and
		// Allgather's direct one for "short", the tree and Bruck's for
		// "tree".
		bcastScatterMin, allreduceLargeMin, allgatherRingMin, reduceLargeMin = math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt
		gatherBinomialMax = math.MaxInt
		reduceFlatMax, reduceFlatMaxRanks, allgatherDirectMaxRanks = math.MaxInt, math.MaxInt, math.MaxInt
		if family == "tree" {
			reduceFlatMax, allgatherDirectMaxRanks = -1, 0
		}
	default:
		// Always the long-message algorithms.
		bcastScatterMin, allreduceLargeMin, allgatherRingMin, reduceLargeMin = 0, 0, 0, 0
		gatherBinomialMax, reduceRabenseifnerMaxRanks = -1, math.MaxInt
		reduceFlatMax = -1
	}
	return func() {
		bcastScatterMin, allreduceLargeMin, gatherBinomialMax, allgatherRingMin, reduceLargeMin = old[0], old[1], old[2], old[3], old[4]
		reduceRabenseifnerMaxRanks, reduceFlatMax, reduceFlatMaxRanks, allgatherDirectMaxRanks = old[5], old[6], old[7], old[8]
	}
}

// Algorithms lists the algorithm families the tests force in turn.
var Algorithms = []struct {
	Name  string
	Force func() (restore func())
}{
	{"short", func() func() { return thresholds("short") }},
	{"tree", func() func() { return thresholds("tree") }},
	{"long", func() func() { return thresholds("long") }},
}
