package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/parley-hpc/parley/comm"
)

// bencher runs one benchmark over its sizes and collects the results.
type bencher struct {
	world    *comm.Comm
	o        options
	b        *benchmark
	out      io.Writer
	progress io.Writer
	started  time.Time
	results  []point
	shown    time.Time
	progLine bool
	warmedUp bool
}

// point is the result for one message size.
type point struct {
	Size       int     `json:"size"`
	Value      float64 `json:"value"`
	Min        float64 `json:"min,omitempty"`
	Max        float64 `json:"max,omitempty"`
	Rate       float64 `json:"rate,omitempty"` // messages per second (mbw_mr)
	Iterations int     `json:"iterations"`
	// Overlap benchmarks: Value is the overall time; these the rest.
	Compute float64 `json:"compute,omitempty"`
	Pure    float64 `json:"pure,omitempty"`
	Overlap float64 `json:"overlap,omitempty"`
}

// largeMessage is OSU's LARGE_MESSAGE_SIZE: above it, fewer iterations.
const largeMessage = 8192

// sizes returns the message sizes of the run: 0 if in range, then powers
// of two from the minimum to the maximum.
func (be *bencher) sizes() []int {
	var s []int
	lo, hi := be.o.minSize, be.o.maxSize
	if lo == 0 {
		s = append(s, 0)
		lo = 1
	}
	for n := 1; n <= hi; n *= 2 {
		if n >= lo {
			s = append(s, n)
		}
	}
	return s
}

// counts returns iterations and warm-up iterations for a size, as OSU
// chooses them unless -i/-x say otherwise.
func (be *bencher) counts(size int) (iters, warmup int) {
	large := size > largeMessage
	switch be.b.kind {
	case "bandwidth", "rate":
		iters, warmup = 100, 10
		if large {
			iters, warmup = 20, 2
		}
	case "collective", "overlap":
		iters, warmup = 1000, 100
		if large {
			iters, warmup = 100, 10
		}
	default: // point-to-point latency
		iters, warmup = 10000, 1000
		if large {
			iters, warmup = 1000, 100
		}
	}
	if be.o.iters > 0 {
		iters = be.o.iters
	}
	if be.o.warmup >= 0 {
		warmup = be.o.warmup
	}
	if be.o.smoke {
		iters, warmup = 2, 1
	} else if len(be.results) == 0 && be.o.warmup < 0 && !be.warmedUp {
		// The first size also warms the process up (the runtime's own
		// start-up work, page faults on fresh rings): ten times the
		// warm-up, in every implementation compare runs (bench/c/osu.c
		// does the same).
		warmup *= 10
		be.warmedUp = true
	}
	return iters, warmup
}

// add records a result (on rank 0) and shows progress on long runs.
func (be *bencher) add(p point) {
	if be.world.Rank() != 0 {
		return
	}
	be.results = append(be.results, p)
	if be.o.quiet || be.o.smoke {
		return
	}
	now := time.Now()
	if now.Sub(be.started) > 3*time.Second && now.Sub(be.shown) > time.Second {
		be.shown = now
		be.progLine = true
		fmt.Fprintf(be.progress, "\rbench: %s: %s done (%v)   ", be.b.name, humanSize(p.Size), now.Sub(be.started).Round(time.Second))
	}
}

func humanSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// Result is the JSON document a run writes (schema parley-bench/1, in
// BENCHMARKS.md). The C reference writes the same.
type Result struct {
	Schema         string  `json:"schema"`
	Benchmark      string  `json:"benchmark"`
	Implementation string  `json:"implementation"`
	Ranks          int     `json:"ranks"`
	Transport      string  `json:"transport"`
	Unit           string  `json:"unit"`
	LowerIsBetter  bool    `json:"lower_is_better"`
	Host           string  `json:"host"`
	Time           string  `json:"time"`
	Window         int     `json:"window,omitempty"`
	Results        []point `json:"results"`
}

const schema = "parley-bench/1"

func (be *bencher) result() *Result {
	tr := be.o.transport
	if tr == "" {
		tr = "auto"
	}
	r := &Result{Schema: schema, Benchmark: be.b.name, Implementation: "parley", Ranks: be.world.Size(),
		Transport: tr, Unit: unitOf(be.b.kind), LowerIsBetter: be.b.kind == "latency" || be.b.kind == "collective" || be.b.kind == "overlap",
		Host: comm.Hostname(), Time: time.Now().UTC().Format(time.RFC3339), Results: be.results}
	if be.b.kind == "bandwidth" || be.b.kind == "rate" {
		r.Window = be.o.window
	}
	return r
}

func unitOf(kind string) string {
	if kind == "bandwidth" || kind == "rate" {
		return "MB/s"
	}
	return "us"
}

// report prints the table (or Go benchmark lines) and writes the files.
func (be *bencher) report() error {
	if be.progLine {
		fmt.Fprint(be.progress, "\r\033[K")
	}
	r := be.result()
	if be.o.format == "go" {
		printGo(be.out, r)
	} else {
		printTable(be.out, r)
	}
	if be.o.jsonPath != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(be.o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if be.o.svgPath != "" {
		svg := plotResults(fmt.Sprintf("%s, %d ranks", r.Benchmark, r.Ranks), []*Result{r})
		if err := os.WriteFile(be.o.svgPath, []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "# %s %s test (OSU method), %d ranks, transport %s\n", r.Implementation, r.Benchmark, r.Ranks, r.Transport)
	switch r.Unit {
	case "MB/s":
		if r.Benchmark == "mbw_mr" {
			fmt.Fprintf(w, "%-10s %16s %16s\n", "# Size", "MB/s", "Messages/s")
			for _, p := range r.Results {
				fmt.Fprintf(w, "%-10d %16.2f %16.2f\n", p.Size, p.Value, p.Rate)
			}
			return
		}
		fmt.Fprintf(w, "%-10s %16s\n", "# Size", "Bandwidth (MB/s)")
		for _, p := range r.Results {
			fmt.Fprintf(w, "%-10d %16.2f\n", p.Size, p.Value)
		}
	default:
		if len(r.Results) > 0 && r.Results[0].Pure > 0 {
			printOverlap(w, r)
			return
		}
		if r.Benchmark == "latency" || r.Benchmark == "multi_lat" {
			fmt.Fprintf(w, "%-10s %16s\n", "# Size", "Latency (us)")
			for _, p := range r.Results {
				fmt.Fprintf(w, "%-10d %16.2f\n", p.Size, p.Value)
			}
			return
		}
		fmt.Fprintf(w, "%-10s %16s %12s %12s %12s\n", "# Size", "Avg Latency(us)", "Min (us)", "Max (us)", "Iterations")
		for _, p := range r.Results {
			fmt.Fprintf(w, "%-10d %16.2f %12.2f %12.2f %12d\n", p.Size, p.Value, p.Min, p.Max, p.Iterations)
		}
	}
}

// printGo prints one Go benchmark line per size, which benchstat reads.
func printGo(w io.Writer, r *Result) {
	fmt.Fprintf(w, "goos: linux\npkg: parley/bench\n")
	for _, p := range r.Results {
		name := fmt.Sprintf("Benchmark%s/impl=%s/ranks=%d/transport=%s/size=%d", r.Benchmark, r.Implementation, r.Ranks, r.Transport, p.Size)
		if r.Unit == "MB/s" {
			fmt.Fprintf(w, "%s %d %.2f MB/s\n", name, p.Iterations, p.Value)
		} else {
			fmt.Fprintf(w, "%s %d %.1f ns/op\n", name, p.Iterations, p.Value*1000)
		}
	}
}

// now returns a monotonic time in microseconds.
func now() float64 { return float64(time.Since(epoch).Nanoseconds()) / 1e3 }

var epoch = time.Now()
