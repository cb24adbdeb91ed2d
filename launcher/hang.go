//go:build linux

package launcher

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hpc/parley/internal/bootstrap"
)

// The hang report: when --timeout ends a job, or Ctrl-C interrupts one
// that has run for a while, mpirun asks every rank what it is doing, twice,
// snapshotGap apart, and prints, for every rank, each goroutine blocked in
// a parley call (what, on whom, for how long) and the messages that
// arrived and match no receive. A cycle of ranks waiting on each other is
// reported only when it is stable: every rank on it reported the same
// waits in both snapshots and handled no event in between. One snapshot
// cannot tell a deadlock from a healthy exchange caught mid-flight.

const (
	// snapshotWait bounds how long mpirun waits for the ranks' answers.
	snapshotWait = time.Second
	// snapshotGap separates the two snapshots.
	snapshotGap = 500 * time.Millisecond
	// interruptReportAfter: Ctrl-C on a job older than this prints the
	// hang report before stopping it.
	interruptReportAfter = 3 * time.Second
)

type hangPhase int

const (
	firstSnapshot hangPhase = iota
	betweenSnapshots
	secondSnapshot
)

// hangReport is a hang report being gathered.
type hangReport struct {
	why       string // the report's first line
	code      int    // the exit status once it is printed
	msg       string // the failure summary once it is printed
	phase     hangPhase
	snapshots [2]map[int]*bootstrap.Report
	timer     *time.Timer
}

// startHangReport asks every rank what it is doing; the report is printed,
// and the job stopped with code, after the second snapshot.
func (j *job) startHangReport(why string, code int, msg string) {
	if j.stopping || j.hang != nil {
		return
	}
	j.hang = &hangReport{why: why, code: code, msg: msg,
		snapshots: [2]map[int]*bootstrap.Report{{}, {}}}
	j.queryRanks()
}

func (j *job) queryRanks() {
	for _, l := range j.agents {
		if !l.gone && l.conn != nil {
			l.conn.Send(bootstrap.TQuery, nil)
		}
	}
	j.hang.timer = time.NewTimer(snapshotWait)
}

// gotReport records a rank's answer in the current snapshot.
func (j *job) gotReport(m *bootstrap.Report) {
	h := j.hang
	if h == nil || h.phase == betweenSnapshots {
		return
	}
	snap := h.snapshots[0]
	if h.phase == secondSnapshot {
		snap = h.snapshots[1]
	}
	snap[m.Rank] = m
	if len(snap) >= j.alive {
		h.timer.Stop()
		j.stepHangReport()
	}
}

// stepHangReport moves the report on when a snapshot is complete or its
// time is up.
func (j *job) stepHangReport() {
	h := j.hang
	switch h.phase {
	case firstSnapshot:
		h.phase = betweenSnapshots
		h.timer = time.NewTimer(snapshotGap)
	case betweenSnapshots:
		h.phase = secondSnapshot
		j.queryRanks()
	case secondSnapshot:
		j.finishHangReport()
	}
}

// finishHangReport prints the report from the latest snapshot and stops
// the job.
func (j *job) finishHangReport() {
	h := j.hang
	j.hang = nil
	h.timer.Stop()
	latest := h.snapshots[1]
	if len(latest) == 0 {
		latest = h.snapshots[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s; what each rank was doing:\n", h.why)
	for r := range j.ranks {
		if j.ranks[r].exited {
			fmt.Fprintf(&b, "  %s: exited\n", j.describeRank(r))
			continue
		}
		text := "no answer"
		if m := latest[r]; m != nil {
			text = m.Text
		}
		lines := strings.Split(text, "\n")
		fmt.Fprintf(&b, "  %s: %s\n", j.describeRank(r), lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "      %s\n", l)
		}
	}
	for _, c := range stableCycles(h.snapshots[0], h.snapshots[1]) {
		parts := make([]string, len(c))
		for i, r := range c {
			parts[i] = strconv.Itoa(r)
		}
		fmt.Fprintf(&b, "ranks waiting on each other in a cycle (no progress in %v): %s -> %s\n",
			snapshotGap, strings.Join(parts, " -> "), parts[0])
	}
	j.out.notice("%s", strings.TrimRight(b.String(), "\n"))
	j.fail(h.code, h.msg)
}

// stableCycles finds the cycles of the waits-on graph among the ranks
// that are stuck: they reported in both snapshots, with the same waits and
// the same progress count.
func stableCycles(first, second map[int]*bootstrap.Report) [][]int {
	stuck := map[int][]int{}
	for r, b := range second {
		a := first[r]
		if a == nil || a.Progress != b.Progress || !slices.Equal(a.WaitsOn, b.WaitsOn) || len(b.WaitsOn) == 0 {
			continue
		}
		stuck[r] = b.WaitsOn
	}
	return waitCycles(stuck)
}

// waitCycles finds the elementary cycles of the graph in which rank r
// waits on the ranks edges[r], each reported once, starting from its
// smallest rank.
func waitCycles(edges map[int][]int) [][]int {
	ranks := make([]int, 0, len(edges))
	for r := range edges {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	var cycles [][]int
	seen := map[string]bool{}
	// Depth-first search from each rank for paths back to it through
	// larger ranks only, so each cycle is found once, from its smallest
	// member. The graphs are small (ranks stuck in a hang report).
	var path []int
	onPath := map[int]bool{}
	var visit func(start, r int)
	visit = func(start, r int) {
		for _, next := range edges[r] {
			switch {
			case next == start:
				c := slices.Clone(path)
				key := fmt.Sprint(c)
				if !seen[key] {
					seen[key] = true
					cycles = append(cycles, c)
				}
			case next > start && !onPath[next] && edges[next] != nil && len(cycles) < 16:
				onPath[next] = true
				path = append(path, next)
				visit(start, next)
				path = path[:len(path)-1]
				onPath[next] = false
			}
		}
	}
	for _, start := range ranks {
		path = append(path[:0], start)
		onPath = map[int]bool{start: true}
		visit(start, start)
	}
	return cycles
}
