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
	oldPairs, oldBoard := reducePairs, boardMax
	if family != "board" {
		boardMax = -1 // the messages' algorithms, also where the board would serve
	}
	old := [26]int{bcastScatterMin, allreduceLargeMin, gatherBinomialMax, allgatherRingMin, reduceLargeMin, reduceRabenseifnerMaxRanks,
		reduceFlatMax, reduceFlatMaxRanks, allgatherDirectMaxRanks, alltoallDirectMax, alltoallDirectMaxRanks,
		reduceScatterDirectMax, reduceScatterDirectMaxRanks, barrierLinearMin, barrierLinearMax, rootedFlatMaxRanks, bcastFlatMax, allreduceFlatMax, allreduceFlatMaxRanks, allgatherDirectMax, allreducePairMax, reduceScatterHalvingMax, allgatherDoublingMax, alltoallBruckMax, alltoallBruckMinRanks, reduceScatterThroughRootMax}
	switch family {
	case "board":
		// The defaults: the board where it serves, messages elsewhere.
	case "short", "tree":
		// Always the short-message algorithms; Reduce's flat one,
		// the direct ones of Allgather, Alltoall and ReduceScatter (on
		// a power of two ranks: recursive doubling, and recursive
		// halving for a commutative op), the root talking to every
		// rank in Bcast, Gather, Scatter and Allreduce, 2-rank
		// Allreduce's whole exchange, and the linear Barrier for
		// "short"; the trees, Bruck's, recursive doubling, pairwise
		// exchange, the ring and dissemination for "tree".
		bcastScatterMin, allreduceLargeMin, allgatherRingMin, reduceLargeMin = math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt
		gatherBinomialMax = math.MaxInt
		reduceFlatMax, reduceFlatMaxRanks, allgatherDirectMaxRanks, allgatherDirectMax = math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt
		alltoallDirectMax, alltoallDirectMaxRanks = math.MaxInt, math.MaxInt
		reduceScatterDirectMax, reduceScatterDirectMaxRanks = math.MaxInt, math.MaxInt
		barrierLinearMin, barrierLinearMax = 1, math.MaxInt
		rootedFlatMaxRanks, bcastFlatMax = math.MaxInt, math.MaxInt
		allreduceFlatMax, allreduceFlatMaxRanks = math.MaxInt, math.MaxInt
		allreducePairMax = math.MaxInt
		reduceScatterHalvingMax, allgatherDoublingMax = math.MaxInt, math.MaxInt
		reduceScatterThroughRootMax = math.MaxInt // its tree in "tree", where Reduce's flat gather is off
		alltoallBruckMax = -1
		if family == "tree" {
			reduceFlatMax, allgatherDirectMaxRanks = -1, 0
			alltoallDirectMax, alltoallDirectMaxRanks, reduceScatterDirectMax = -1, 0, -1
			barrierLinearMin = math.MaxInt
			rootedFlatMaxRanks, bcastFlatMax = 0, -1
			allreduceFlatMax = -1
			allreducePairMax = -1 // recursive doubling's one step
			reducePairs = false
			reduceScatterHalvingMax = -1 // the ring
			allgatherDoublingMax = -1    // Bruck's
			alltoallBruckMax, alltoallBruckMinRanks = math.MaxInt, 3
		}
	default:
		// Always the long-message algorithms.
		bcastScatterMin, allreduceLargeMin, allgatherRingMin, reduceLargeMin = 0, 0, 0, 0
		gatherBinomialMax, reduceRabenseifnerMaxRanks = -1, math.MaxInt
		reduceFlatMax, allgatherDirectMax = -1, -1
		alltoallDirectMax, alltoallDirectMaxRanks, reduceScatterDirectMax = -1, 0, -1
		bcastFlatMax, allreduceFlatMax = -1, -1
		allreducePairMax = -1
		reduceScatterHalvingMax, allgatherDoublingMax, alltoallBruckMax = -1, -1, -1
		reduceScatterThroughRootMax = -1
	}
	return func() {
		bcastScatterMin, allreduceLargeMin, gatherBinomialMax, allgatherRingMin, reduceLargeMin = old[0], old[1], old[2], old[3], old[4]
		reduceRabenseifnerMaxRanks, reduceFlatMax, reduceFlatMaxRanks, allgatherDirectMaxRanks = old[5], old[6], old[7], old[8]
		alltoallDirectMax, alltoallDirectMaxRanks, reduceScatterDirectMax, reduceScatterDirectMaxRanks = old[9], old[10], old[11], old[12]
		barrierLinearMin, barrierLinearMax = old[13], old[14]
		rootedFlatMaxRanks, bcastFlatMax, allreduceFlatMax, allreduceFlatMaxRanks = old[15], old[16], old[17], old[18]
		allgatherDirectMax, allreducePairMax, reduceScatterHalvingMax = old[19], old[20], old[21]
		allgatherDoublingMax, alltoallBruckMax, alltoallBruckMinRanks = old[22], old[23], old[24]
		reduceScatterThroughRootMax = old[25]
		reducePairs, boardMax = oldPairs, oldBoard
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
	{"board", func() func() { return thresholds("board") }},
}
