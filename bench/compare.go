package main

import (
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// osuSource is the C reference benchmark: the same method over the MPI C
// API, writing the same JSON.
//
//go:embed c/osu.c
var osuSource string

// impl is one implementation compare runs.
type impl struct {
	name string
	cmd  func(np int, bench string, args []string, jsonPath string) *exec.Cmd
}

func runCompare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	np := fs.Int("np", 2, "ranks")
	reps := fs.Int("reps", 3, "repetitions of each implementation, interleaved")
	impls := fs.String("impl", "parley,openmpi,mpich", "implementations to run, in this order within a repetition; NAME=DIR adds the parley build in DIR (its mpirun and bench)")
	transport := fs.String("transport", "shm", "shm or tcp, for every implementation; with -hosts tcp (default) or verbs (parley's verbs build, Open MPI's UCX)")
	mpirunPath := fs.String("mpirun", "", "parley's mpirun (default: the mpirun beside this bench binary)")
	svgPath := fs.String("svg", "", "write a plot of the medians")
	jsonPath := fs.String("json", "", "write the medians of every implementation as JSON")
	keep := fs.String("keep", "", "directory to keep every run's JSON in")
	markdown := fs.Bool("md", false, "print the table as Markdown")
	refDir := fs.String("ref", "", "directory of prebuilt C references (osu_openmpi, osu_mpich), for machines without mpicc (bench/device)")
	hosts := fs.String("hosts", "", "run across these hosts (h1,h2), one rank per host in turn, over TCP (parley and openmpi)")
	parleyFlags := fs.String("parley-flags", "", "extra flags for parley's mpirun, space-separated (e.g. --compress)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 {
		fmt.Fprintln(stderr, "usage: bench compare [-np N] [-reps R] [-impl parley,openmpi,mpich] [-transport shm|tcp|verbs] [-hosts h1,h2] BENCHMARK [bench options]")
		return 2
	}
	name, benchArgs := fs.Arg(0), fs.Args()[1:]
	b := benchmarks[name]
	if b == nil {
		fmt.Fprintf(stderr, "bench compare: unknown benchmark %q\n", name)
		return 2
	}
	switch {
	case *hosts != "" && (*transport == "shm" || *transport == "tcp"):
		*transport = "tcp" // between hosts: TCP, unless verbs is asked for
	case *hosts != "" && *transport == "verbs":
	case *transport == "verbs":
		fmt.Fprintln(stderr, "bench compare: -transport verbs: only between hosts (-hosts h1,h2)")
		return 2
	case *transport != "shm" && *transport != "tcp":
		fmt.Fprintf(stderr, "bench compare: -transport %q: shm, tcp, or verbs with -hosts\n", *transport)
		return 2
	}
	// Every implementation is a column, keyed by its name: NAME=DIR needs
	// a name of its own.
	seen := map[string]bool{}
	for _, n := range splitList(*impls) {
		name, _, _ := strings.Cut(n, "=")
		if name = strings.TrimSpace(name); name == "" || seen[name] {
			fmt.Fprintf(stderr, "bench compare: -impl %q: every implementation needs a name of its own (NAME=DIR for another parley build)\n", *impls)
			return 2
		}
		seen[name] = true
	}
	work, err := os.MkdirTemp("", "parley-compare-")
	if err != nil {
		fmt.Fprintln(stderr, "bench compare:", err)
		return 1
	}
	defer os.RemoveAll(work)
	if *keep != "" {
		os.MkdirAll(*keep, 0o755)
	}
	var runners []impl
	for _, n := range splitList(*impls) {
		r, err := newImpl(n, implConfig{work: work, refDir: *refDir, mpirun: *mpirunPath,
			transport: *transport, np: *np, hosts: splitList(*hosts), parleyFlags: strings.Fields(*parleyFlags)})
		if err != nil {
			fmt.Fprintf(stderr, "bench compare: %s: %v (skipped)\n", n, err)
			continue
		}
		runners = append(runners, r)
	}
	if len(runners) == 0 {
		fmt.Fprintln(stderr, "bench compare: nothing to run")
		return 1
	}
	results := map[string][]*Result{}
	start := time.Now()
	for rep := 0; rep < *reps; rep++ {
		for i := range runners {
			// Rotate the order each repetition so no implementation always
			// runs first (or right after another one warmed the caches).
			r := runners[(i+rep)%len(runners)]
			out := filepath.Join(work, fmt.Sprintf("%s-%d.json", r.name, rep))
			cmd := r.cmd(*np, name, append(slices.Clone(benchArgs), "--transport", *transport), out)
			cmd.Stdout, cmd.Stderr = io.Discard, stderr
			fmt.Fprintf(stderr, "\rbench compare: %s repetition %d/%d (%v)   ", r.name, rep+1, *reps, time.Since(start).Round(time.Second))
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(stderr, "\nbench compare: %s: %s: %v\n", r.name, strings.Join(cmd.Args, " "), err)
				return 1
			}
			res, err := readResult(out)
			if err != nil {
				fmt.Fprintf(stderr, "\nbench compare: %s: %v\n", r.name, err)
				return 1
			}
			res.Implementation = r.name // a second parley build's results say "parley" too
			results[r.name] = append(results[r.name], res)
			if *keep != "" {
				data, _ := os.ReadFile(out)
				os.WriteFile(filepath.Join(*keep, filepath.Base(out)), data, 0o644)
			}
		}
	}
	fmt.Fprint(stderr, "\r\033[K")
	var medians []*Result
	for _, r := range runners {
		medians = append(medians, median(results[r.name]))
	}
	if *markdown {
		printMarkdown(stdout, medians, *reps)
	} else {
		printComparison(stdout, medians, *reps)
	}
	if *svgPath != "" {
		title := fmt.Sprintf("%s, %d ranks, %s (medians of %d)", name, *np, *transport, *reps)
		if err := os.WriteFile(*svgPath, []byte(plotResults(title, medians)), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench compare:", err)
			return 1
		}
	}
	if *jsonPath != "" {
		data, _ := json.MarshalIndent(medians, "", "  ")
		if err := os.WriteFile(*jsonPath, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench compare:", err)
			return 1
		}
	}
	return 0
}

// implConfig is how compare runs every implementation.
type implConfig struct {
	work, refDir, mpirun string
	transport            string
	np                   int
	hosts                []string // empty: this machine
	parleyFlags          []string
}

// splitList splits a comma-separated list, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// hostSlots is the -H list that gives each host its share of the np
// ranks ("h1:1,h2:1"), in the syntax both mpiruns take.
func (c implConfig) hostSlots() string {
	per := (c.np + len(c.hosts) - 1) / len(c.hosts)
	list := make([]string, len(c.hosts))
	for i, h := range c.hosts {
		list[i] = fmt.Sprintf("%s:%d", h, per)
	}
	return strings.Join(list, ",")
}

// newImpl prepares one implementation: parley's mpirun and bench, or the C
// reference built with an MPI's mpicc.
func newImpl(name string, c implConfig) (impl, error) {
	oversub := c.np > runtime.NumCPU()
	// NAME=DIR is another build of parley, DIR's mpirun and bench: a change
	// measured against the build before it, interleaved in one run.
	build := ""
	if n, dir, ok := strings.Cut(name, "="); ok {
		name, build = n, dir
	}
	switch {
	case name == "parley" || build != "":
		self, err := os.Executable()
		if err != nil {
			return impl{}, err
		}
		mpirunPath := c.mpirun
		if build != "" {
			self, mpirunPath = filepath.Join(build, "bench"), filepath.Join(build, "mpirun")
			if _, err := os.Stat(self); err != nil {
				return impl{}, fmt.Errorf("no bench in %s", build)
			}
		}
		if mpirunPath == "" {
			mpirunPath = filepath.Join(filepath.Dir(self), "mpirun")
		}
		if _, err := os.Stat(mpirunPath); err != nil {
			return impl{}, fmt.Errorf("no parley mpirun at %s (build it beside bench, or pass -mpirun)", mpirunPath)
		}
		return impl{name: name, cmd: func(np int, bench string, args []string, out string) *exec.Cmd {
			a := []string{"-np", fmt.Sprint(np)}
			if len(c.hosts) > 0 {
				// Ranks alternate between the hosts, so ranks 0 and 1 of a
				// point-to-point benchmark are on different ones.
				a = append(a, "-H", c.hostSlots(), "--map-by", "node", "--bind-to", "none")
			}
			a = append(a, c.parleyFlags...)
			a = append(a, self, bench)
			a = append(a, args...)
			a = append(a, "--json", out, "--quiet")
			return exec.Command(mpirunPath, a...)
		}}, nil
	case name == "openmpi":
		bin, err := buildReference(c.work, c.refDir, "mpicc.openmpi", "osu_openmpi")
		if err != nil {
			return impl{}, err
		}
		launcher, err := exec.LookPath("mpirun.openmpi")
		if err != nil {
			return impl{}, err
		}
		return impl{name: name, cmd: func(np int, bench string, args []string, out string) *exec.Cmd {
			a := []string{"--allow-run-as-root", "-np", fmt.Sprint(np)}
			switch {
			case len(c.hosts) > 0 && c.transport == "verbs":
				a = append(a, "-H", c.hostSlots(), "--map-by", "node", "--bind-to", "none", "--mca", "pml", "ucx")
			case len(c.hosts) > 0:
				a = append(a, "-H", c.hostSlots(), "--map-by", "node", "--bind-to", "none",
					"--mca", "pml", "ob1", "--mca", "btl", "tcp,self")
			case oversub:
				a = append(a, "--oversubscribe", "--bind-to", "none")
			default:
				a = append(a, "--map-by", "core", "--bind-to", "core")
			}
			if c.transport == "tcp" && len(c.hosts) == 0 {
				a = append(a, "--mca", "pml", "ob1", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo")
			}
			a = append(a, bin, bench)
			a = append(a, args...)
			a = append(a, "--json", out, "--impl", "openmpi")
			cmd := exec.Command(launcher, a...)
			cmd.Env = append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
			return cmd
		}}, nil
	case name == "mpich":
		if len(c.hosts) > 0 {
			return impl{}, fmt.Errorf("not run across hosts by compare (parley and openmpi are)")
		}
		bin, err := buildReference(c.work, c.refDir, "mpicc.mpich", "osu_mpich")
		if err != nil {
			return impl{}, err
		}
		launcher, err := exec.LookPath("mpiexec.hydra")
		if err != nil {
			return impl{}, err
		}
		return impl{name: name, cmd: func(np int, bench string, args []string, out string) *exec.Cmd {
			a := []string{"-np", fmt.Sprint(np)}
			if !oversub {
				a = append(a, "-bind-to", "core")
			}
			a = append(a, bin, bench)
			a = append(a, args...)
			a = append(a, "--json", out, "--impl", "mpich")
			cmd := exec.Command(launcher, a...)
			cmd.Env = os.Environ()
			if c.transport == "tcp" {
				cmd.Env = append(cmd.Env, "UCX_TLS=tcp,self", "UCX_NET_DEVICES=lo", "MPIR_CVAR_NOLOCAL=1")
			}
			return cmd
		}}, nil
	}
	return impl{}, fmt.Errorf("unknown implementation (parley, openmpi, mpich, or NAME=DIR for a parley build in DIR)")
}

// runReference is "bench reference DIR": it builds the C reference with
// every MPI compiler wrapper found into DIR (osu_openmpi, osu_mpich), for
// "bench compare -ref DIR" on a machine without mpicc.
func runReference(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: bench reference DIR")
		return 2
	}
	built := 0
	for _, ref := range []struct{ mpicc, out string }{{"mpicc.openmpi", "osu_openmpi"}, {"mpicc.mpich", "osu_mpich"}} {
		bin, err := buildReference(args[0], "", ref.mpicc, ref.out)
		if err != nil {
			fmt.Fprintln(stderr, "bench reference:", err)
			continue
		}
		fmt.Fprintln(stdout, bin)
		built++
	}
	os.Remove(filepath.Join(args[0], "osu.c"))
	if built == 0 {
		return 1
	}
	return 0
}

// buildReference compiles the C reference with an MPI's compiler wrapper,
// or takes the prebuilt one from refDir.
func buildReference(work, refDir, mpicc, out string) (string, error) {
	if refDir != "" {
		bin := filepath.Join(refDir, out)
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("no prebuilt reference: %w", err)
		}
		return bin, nil
	}
	cc, err := exec.LookPath(mpicc)
	if err != nil {
		return "", fmt.Errorf("%s not found (install openmpi-bin libopenmpi-dev / mpich libmpich-dev)", mpicc)
	}
	src := filepath.Join(work, "osu.c")
	if err := os.WriteFile(src, []byte(osuSource), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(work, out)
	if msg, err := exec.Command(cc, "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", mpicc, err, msg)
	}
	return bin, nil
}

// median combines repetitions size by size.
func median(rs []*Result) *Result {
	m := *rs[0]
	m.Results = nil
	for i, p := range rs[0].Results {
		var vs, rates []float64
		for _, r := range rs {
			if i < len(r.Results) && r.Results[i].Size == p.Size {
				vs = append(vs, r.Results[i].Value)
				rates = append(rates, r.Results[i].Rate)
			}
		}
		q := p
		q.Value = med(vs)
		q.Rate = med(rates)
		q.Min, q.Max = slices.Min(vs), slices.Max(vs)
		m.Results = append(m.Results, q)
	}
	return &m
}

func med(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// printComparison prints, per size, each implementation's median and the
// ratio of parley's to it.
func printComparison(w io.Writer, ms []*Result, reps int) {
	base := ms[0]
	better := "lower is better"
	if !base.LowerIsBetter {
		better = "higher is better"
	}
	fmt.Fprintf(w, "# %s, %d ranks, transport %s: medians of %d interleaved runs (%s, %s)\n",
		base.Benchmark, base.Ranks, base.Transport, reps, base.Unit, better)
	fmt.Fprintf(w, "%-10s", "# Size")
	for _, m := range ms {
		fmt.Fprintf(w, " %12s", m.Implementation)
	}
	for _, m := range ms[1:] {
		fmt.Fprintf(w, " %16s", base.Implementation+"/"+m.Implementation)
	}
	fmt.Fprintln(w)
	for i, p := range base.Results {
		fmt.Fprintf(w, "%-10d", p.Size)
		for _, m := range ms {
			fmt.Fprintf(w, " %12.2f", valueAt(m, i, p.Size))
		}
		for _, m := range ms[1:] {
			fmt.Fprintf(w, " %16.2f", p.Value/valueAt(m, i, p.Size))
		}
		fmt.Fprintln(w)
	}
}

func valueAt(r *Result, i, size int) float64 {
	if i < len(r.Results) && r.Results[i].Size == size {
		return r.Results[i].Value
	}
	for _, p := range r.Results {
		if p.Size == size {
			return p.Value
		}
	}
	return math.NaN()
}

// printMarkdown prints the comparison as a Markdown table, for
// BENCHMARKS.md.
func printMarkdown(w io.Writer, ms []*Result, reps int) {
	base := ms[0]
	better := "lower is better"
	if !base.LowerIsBetter {
		better = "higher is better"
	}
	fmt.Fprintf(w, "%s, %d ranks, %s, %s (%s); medians of %d interleaved runs\n\n", base.Benchmark, base.Ranks,
		base.Transport, base.Unit, better, reps)
	fmt.Fprintf(w, "| size |")
	for _, m := range ms {
		fmt.Fprintf(w, " %s |", m.Implementation)
	}
	for _, m := range ms[1:] {
		fmt.Fprintf(w, " %s/%s |", base.Implementation, m.Implementation)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "|---:|")
	for range ms[1:] {
		fmt.Fprint(w, "---:|---:|")
	}
	fmt.Fprintln(w, "---:|")
	for i, p := range base.Results {
		fmt.Fprintf(w, "| %s |", humanSize(p.Size))
		for _, m := range ms {
			fmt.Fprintf(w, " %s |", fmtValue(valueAt(m, i, p.Size)))
		}
		for _, m := range ms[1:] {
			fmt.Fprintf(w, " %.2f |", p.Value/valueAt(m, i, p.Size))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

func fmtValue(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
