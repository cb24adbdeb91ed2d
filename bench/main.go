package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// benchmark is one measurement the program can run.
type benchmark struct {
	name    string
	kind    string // "latency" (us, lower is better) or "bandwidth" (MB/s) or "rate"
	minRank int    // ranks it needs
	even    bool   // needs an even number of ranks
	run     func(b *bencher) error
	defMin  int
}

var benchmarks = map[string]*benchmark{}

func register(b *benchmark) { benchmarks[b.name] = b }

func names() []string {
	var ns []string
	for n := range benchmarks {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// options are the benchmark's flags, as OSU's.
type options struct {
	minSize, maxSize int
	iters, warmup    int // 0: OSU's defaults per size
	window           int
	validate         bool
	transport        string
	jsonPath         string
	svgPath          string
	format           string // "osu" (default) or "go" (benchstat's text format)
	smoke            bool   // tiny iteration counts, for tests
	quiet            bool   // no progress line
	cpuProfile       string // write a CPU profile per rank
	trace            string // write an execution trace per rank
	busy             bool   // latency: GOMAXPROCS-1 goroutines compute meanwhile
}

func parseSizes(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, ":")
	parse := func(v string, def int) (int, error) {
		if v == "" {
			return def, nil
		}
		return parseSize(v)
	}
	if !ok {
		n, err := parseSize(s)
		return 0, n, err // OSU: -m MAX
	}
	a, err := parse(lo, 0)
	if err != nil {
		return 0, 0, err
	}
	b, err := parse(hi, 4<<20)
	if err != nil {
		return 0, 0, err
	}
	if a > b {
		return 0, 0, fmt.Errorf("size range %q: minimum above maximum", s)
	}
	return a, b, nil
}

// parseSize accepts bytes, optionally with K, M or G (binary multiples).
func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q is not a byte count", s)
	}
	return n * mult, nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: mpirun -np N bench BENCHMARK [options]
       bench compare [compare options] BENCHMARK [options]
       bench plot -o OUT.svg [-title T] RESULT.json...
       bench reference DIR   (build the C reference for compare -ref DIR)
       bench limits [-reps N] (memcpy, process_vm_readv and reduction bandwidth here)

benchmarks: %s

options:
  -m MIN:MAX     message sizes in bytes (K, M suffixes allowed)
  -i N           iterations per size (default: OSU's, by size)
  -x N           warm-up iterations per size
  -W N           window of nonblocking operations for bw, bibw, mbw_mr (default 64)
  -c             validate received data
  --transport T  force shm or tcp between ranks
  --json FILE    write the results as JSON (schema in BENCHMARKS.md)
  --svg FILE     write a log-log plot
  --format go    print Go benchmark lines (for benchstat) instead of the table
`, strings.Join(names(), " "))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "compare" {
		return runCompare(args[1:], stdout, stderr)
	}
	if args[0] == "plot" {
		return runPlot(args[1:], stdout, stderr)
	}
	if args[0] == "reference" {
		return runReference(args[1:], stdout, stderr)
	}
	if args[0] == "limits" {
		return runLimits(args[1:], stdout, stderr)
	}
	b := benchmarks[args[0]]
	if b == nil {
		fmt.Fprintf(stderr, "bench: unknown benchmark %q (known: %s)\n", args[0], strings.Join(names(), ", "))
		return 2
	}
	o, err := parseOptions(b, args[1:], stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if o.transport != "" {
		os.Setenv("PARLEY_TRANSPORT", o.transport)
	}
	world, err := comm.Init()
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if world.Size() < b.minRank || (b.even && world.Size()%2 != 0) {
		if world.Rank() == 0 {
			fmt.Fprintf(stderr, "bench: %s needs at least %d ranks%s, this run has %d\n", b.name, b.minRank,
				map[bool]string{true: " and an even count", false: ""}[b.even], world.Size())
		}
		comm.Finalize()
		return 2
	}
	if o.cpuProfile != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", o.cpuProfile, world.Rank()))
		if err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	if o.trace != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", o.trace, world.Rank()))
		if err == nil {
			trace.Start(f)
			defer f.Close()
			defer trace.Stop()
		}
	}
	be := &bencher{world: world, o: o, b: b, out: stdout, progress: stderr, started: time.Now()}
	if !o.smoke {
		if err := warmProcess(world); err != nil {
			fmt.Fprintf(stderr, "bench: rank %d: %v\n", world.Rank(), err)
			world.Abort(1)
		}
	}
	if err := b.run(be); err != nil {
		fmt.Fprintf(stderr, "bench: rank %d: %v\n", world.Rank(), err)
		world.Abort(1)
	}
	if world.Rank() == 0 {
		if err := be.report(); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			world.Abort(1)
		}
	}
	if err := comm.Finalize(); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func parseOptions(b *benchmark, args []string, stderr io.Writer) (options, error) {
	o := options{minSize: b.defMin, maxSize: 4 << 20, window: 64}
	fs := flag.NewFlagSet(b.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("m", "", "message sizes MIN:MAX")
	fs.IntVar(&o.iters, "i", 0, "iterations per size")
	fs.IntVar(&o.warmup, "x", -1, "warm-up iterations per size")
	fs.IntVar(&o.window, "W", 64, "window size")
	fs.BoolVar(&o.validate, "c", false, "validate received data")
	fs.StringVar(&o.transport, "transport", "", "shm, tcp or verbs (default: what mpirun chose)")
	fs.StringVar(&o.jsonPath, "json", "", "write JSON results to FILE")
	fs.StringVar(&o.svgPath, "svg", "", "write an SVG plot to FILE")
	fs.StringVar(&o.format, "format", "osu", "osu or go")
	fs.BoolVar(&o.smoke, "smoke", false, "tiny iteration counts (tests)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write each rank's CPU profile to FILE.RANK")
	fs.BoolVar(&o.busy, "busy", false, "latency: keep every P but one computing meanwhile (a hybrid program's goroutines)")
	fs.StringVar(&o.trace, "trace", "", "write each rank's execution trace (runtime/trace) to FILE.RANK")
	fs.BoolVar(&randomData, "random", false, "incompressible payloads (for mpirun --compress)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *sizes != "" {
		lo, hi, err := parseSizes(*sizes)
		if err != nil {
			return o, err
		}
		o.minSize, o.maxSize = max(lo, b.defMin), hi
	}
	if o.window < 1 {
		return o, fmt.Errorf("-W %d: the window must be at least 1", o.window)
	}
	switch o.transport {
	case "", "shm", "tcp", "verbs":
	default:
		return o, fmt.Errorf("--transport %q: shm, tcp or verbs", o.transport)
	}
	switch o.format {
	case "osu", "go":
	default:
		return o, fmt.Errorf("--format %q: osu or go", o.format)
	}
	return o, nil
}

// processWarmUp is how long every run spends in barriers before its first
// size. A fresh process is slower for its first milliseconds (Go's runtime
// checks on its threads every 20 us at first, backing off to every 10 ms;
// pages and caches are cold), which would otherwise show in whichever size
// comes first, and in all of a benchmark as short as barrier. bench/c/osu.c
// does the same, so every implementation compare runs is measured warm.
const processWarmUp = 50 * time.Millisecond

// warmProcess runs barriers for processWarmUp; rank 0 decides when to stop,
// every 256 barriers, and tells the others.
func warmProcess(w *comm.Comm) error {
	start := time.Now()
	for {
		for range 256 {
			if err := collectives.Barrier(w); err != nil {
				return err
			}
		}
		more := []int32{0}
		if w.Rank() == 0 && time.Since(start) < processWarmUp {
			more[0] = 1
		}
		if err := collectives.Bcast(w, more, 0); err != nil {
			return err
		}
		if more[0] == 0 {
			return nil
		}
	}
}
