package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-hpc/parley/internal/proctest"
)

var bin string // the built mpirun and bench

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	for _, p := range []string{"../mpirun", "."} {
		out := filepath.Join(dir, map[string]string{"../mpirun": "mpirun", ".": "bench"}[p])
		cmd := exec.Command("go", "build", "-o", out, p)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", p, err)
			os.Exit(1)
		}
	}
	code := proctest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestSmoke runs every benchmark with tiny iteration counts through the
// real mpirun, and checks its JSON against the schema and its SVG as XML.
func TestSmoke(t *testing.T) {
	for _, name := range names() {
		for _, tr := range []string{"shm", "tcp"} {
			t.Run(name+"/"+tr, func(t *testing.T) {
				t.Parallel()
				np := "2"
				if name == "mbw_mr" || name == "multi_lat" || strings.Contains(name, "all") || name == "reduce_scatter" {
					np = "4"
				}
				dir := t.TempDir()
				js, svg := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.svg")
				cmd := exec.Command(filepath.Join(bin, "mpirun"), "-np", np, filepath.Join(bin, "bench"), name,
					"--smoke", "-m", "0:64K", "-c", "--transport", tr, "--json", js, "--svg", svg)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				r, err := readResult(js)
				if err != nil {
					t.Fatal(err)
				}
				if r.Benchmark != name || r.Implementation != "parley" || r.Transport != tr || len(r.Results) == 0 {
					t.Fatalf("result %+v", r)
				}
				if !strings.Contains(string(out), "# parley "+name) {
					t.Errorf("no table header:\n%s", out)
				}
				checkSVG(t, svg)
			})
		}
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	root := ""
	lines := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "polyline" {
				lines++
			}
		}
	}
	if root != "svg" || lines == 0 {
		t.Fatalf("SVG root %q with %d lines", root, lines)
	}
}

func TestSchemaRejects(t *testing.T) {
	good := Result{Schema: schema, Benchmark: "latency", Implementation: "x", Ranks: 2, Unit: "us",
		Results: []point{{Size: 1, Value: 1, Iterations: 1}, {Size: 2, Value: 1, Iterations: 1}}}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(r *Result){
		func(r *Result) { r.Schema = "other" },
		func(r *Result) { r.Unit = "parsecs" },
		func(r *Result) { r.Ranks = 0 },
		func(r *Result) { r.Results[1].Size = 1 },
		func(r *Result) { r.Results[0].Iterations = 0 },
	}
	for i, f := range bad {
		r := good
		r.Results = append([]point(nil), good.Results...)
		f(&r)
		if r.validate() == nil {
			t.Errorf("case %d validated", i)
		}
	}
	b, _ := json.Marshal(good)
	var back Result
	if json.Unmarshal(b, &back) != nil || back.validate() != nil {
		t.Fatal("round trip")
	}
}

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi int
		bad    bool
	}{
		{"0:64", 0, 64, false}, {"1K:4M", 1024, 4 << 20, false}, {"128", 0, 128, false}, {":8", 0, 8, false},
		{"9:3", 0, 0, true}, {"x:1", 0, 0, true},
	} {
		lo, hi, err := parseSizes(tc.in)
		if (err != nil) != tc.bad || !tc.bad && (lo != tc.lo || hi != tc.hi) {
			t.Errorf("parseSizes(%q) = %d, %d, %v", tc.in, lo, hi, err)
		}
	}
}

// TestCompareSmoke builds the C reference with whichever MPIs are
// installed and runs a tiny comparison (skipped without mpicc).
func TestCompareSmoke(t *testing.T) {
	var impls []string
	for _, cc := range []struct{ impl, mpicc string }{{"openmpi", "mpicc.openmpi"}, {"mpich", "mpicc.mpich"}} {
		if _, err := exec.LookPath(cc.mpicc); err == nil {
			impls = append(impls, cc.impl)
		}
	}
	if len(impls) == 0 {
		proctest.Unavailable(t, "no mpicc.openmpi or mpicc.mpich: install openmpi-bin libopenmpi-dev mpich libmpich-dev")
	}
	for _, b := range []string{"latency", "bw", "bibw", "allreduce", "alltoallv"} {
		t.Run(b, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(filepath.Join(bin, "bench"), "compare", "-np", "2", "-reps", "1",
				"-impl", "parley,"+strings.Join(impls, ","), "-svg", filepath.Join(dir, "c.svg"), "-json", filepath.Join(dir, "c.json"),
				b, "--smoke", "-m", "0:1K")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, impl := range impls {
				if !strings.Contains(string(out), "parley/"+impl) {
					t.Errorf("no ratio column for %s:\n%s", impl, out)
				}
			}
			checkSVG(t, filepath.Join(dir, "c.svg"))
		})
	}
}

// TestCompareWithPrebuiltReference builds the C reference once with
// "bench reference" and compares against it with -ref, the way
// bench/device/run.sh does on a machine without mpicc; an empty -ref
// directory names the missing reference.
func TestCompareWithPrebuiltReference(t *testing.T) {
	if _, err := exec.LookPath("mpicc.openmpi"); err != nil {
		proctest.Unavailable(t, "no mpicc.openmpi: install openmpi-bin libopenmpi-dev")
	}
	refs := t.TempDir()
	out, err := exec.Command(filepath.Join(bin, "bench"), "reference", refs).CombinedOutput()
	if err != nil {
		t.Fatalf("bench reference: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(refs, "osu.c")); err == nil {
		t.Errorf("bench reference left osu.c in %s", refs)
	}
	for _, tc := range []struct {
		name, ref string
		want      string
	}{
		{"prebuilt", refs, "parley/openmpi"},
		{"missing", t.TempDir(), "no prebuilt reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(bin, "bench"), "compare", "-np", "2", "-reps", "1",
				"-ref", tc.ref, "-impl", "parley,openmpi", "latency", "--smoke", "-m", "0:64")
			out, _ := cmd.CombinedOutput()
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestCompareTwoBuilds: NAME=DIR runs the parley build in DIR as one more
// implementation, with its own column and ratio; a DIR without bench is
// skipped by name.
func TestCompareTwoBuilds(t *testing.T) {
	cmd := exec.Command(filepath.Join(bin, "bench"), "compare", "-np", "2", "-reps", "2",
		"-impl", "parley,before="+bin+",none="+t.TempDir(), "latency", "--smoke", "-m", "0:64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"parley/before", ": no bench in "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCompareArgs: verbs is for comparing across hosts; other
// transports are refused by name; so is an -impl list whose columns would
// share a name.
func TestCompareArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-transport", "verbs", "latency"}, "-transport verbs: only between hosts (-hosts h1,h2)"},
		{[]string{"-transport", "ib", "latency"}, `-transport "ib": shm, tcp, or verbs with -hosts`},
		{[]string{"-impl", "parley,parley=/tmp", "latency"}, "every implementation needs a name of its own"},
		{[]string{"-impl", "parley,=/tmp", "latency"}, "every implementation needs a name of its own"},
		{[]string{"-impl", "parley,old=/a,old=/b", "latency"}, "every implementation needs a name of its own"},
	} {
		var out, errb strings.Builder
		if code := runCompare(c.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("compare %v: status %d, %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// TestLimits: bench limits prints a row per size with a number in every
// column (process_vm_readv is permitted for a process's own memory).
func TestLimits(t *testing.T) {
	var out, errb strings.Builder
	if code := runLimits([]string{"-reps", "3"}, &out, &errb); code != 0 {
		t.Fatalf("status %d: %s", code, errb.String())
	}
	rows := 0
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && !strings.HasPrefix(l, "#") {
			for _, v := range f[1:] {
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					t.Fatalf("row %q: %q is not a number", l, v)
				}
			}
			rows++
		}
	}
	if rows != 6 {
		t.Fatalf("%d rows, want 6:\n%s", rows, out.String())
	}
	errb.Reset()
	if code := runLimits([]string{"-reps", "0"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "-reps 0") {
		t.Fatalf("-reps 0: status %d, %q (it used to panic)", code, errb.String())
	}
}

// TestDeviceRunParts: bench/device/run.sh runs only the parts PARTS names
// (BENCHMARKS.md tells to run it a part at a time): here from a directory
// with nothing packed, so each measurement it does start reports itself
// failed.
func TestDeviceRunParts(t *testing.T) {
	dir := t.TempDir()
	script, err := os.ReadFile("device/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run.sh")
	os.WriteFile(run, script, 0o755)
	for _, c := range []struct {
		parts, nps string
		want, none []string
	}{
		{"none", "", []string{"# device:"}, []string{"##"}},
		{"p2p", "", []string{"## point to point", "# latency -m 8:4M at 2 ranks: failed"}, []string{"## collectives", "## start-up"}},
		// Every collective bench has, at each rank count.
		{"collectives", "2 4", []string{"## collectives, 4 ranks", "# allreduce -m 8:4M at 2 ranks: failed",
			"# reduce -m 8:4M at 4 ranks", "# reduce_scatter -m 8:4M at 4", "# bcast -m 8:4M at 4", "# gather -m 8:4M at 4",
			"# scatter -m 8:4M at 4", "# allgather -m 8:4M at 4", "# alltoall -m 8:4M at 4", "# allgatherv -m 8:1M at 4",
			"# alltoallv -m 8:1M at 4", "# barrier at 4"}, []string{"## point to point", "## start-up"}},
	} {
		cmd := exec.Command("bash", run)
		cmd.Env = append(os.Environ(), "PARTS="+c.parts)
		if c.nps != "" {
			cmd.Env = append(cmd.Env, "NPS="+c.nps)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("PARTS=%s: %v\n%s", c.parts, err, out)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("PARTS=%s: no %q in:\n%s", c.parts, w, out)
			}
		}
		for _, w := range c.none {
			if strings.Contains(string(out), w) {
				t.Errorf("PARTS=%s: %q ran:\n%s", c.parts, w, out)
			}
		}
	}
}
