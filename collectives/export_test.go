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

func thresholds(small bool) func() {
	old := [6]int{bcastScatterMin, allreduceLargeMin, gatherBinomialMax, allgatherRingMin, reduceLargeMin, reduceRabenseifnerMaxRanks}
	if small {
		// Always the short-message algorithms.
		bcastScatterMin, allreduceLargeMin, allgatherRingMin, reduceLargeMin = math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt
		gatherBinomialMax = math.MaxInt
	} else {
		// Always the long-message algorithms.
		bcastScatterMin, allreduceLargeMin, allgatherRingMin, reduceLargeMin = 0, 0, 0, 0
		gatherBinomialMax, reduceRabenseifnerMaxRanks = -1, math.MaxInt
	}
	return func() {
		bcastScatterMin, allreduceLargeMin, gatherBinomialMax, allgatherRingMin, reduceLargeMin = old[0], old[1], old[2], old[3], old[4]
		reduceRabenseifnerMaxRanks = old[5]
	}
}

// Algorithms lists the algorithm families the tests force in turn.
var Algorithms = []struct {
	Name  string
	Force func() (restore func())
}{
	{"short", func() func() { return thresholds(true) }},
	{"long", func() func() { return thresholds(false) }},
}
