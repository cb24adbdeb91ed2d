package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
)

// series is one line of a plot.
type series struct {
	name   string
	xs, ys []float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// plotResults draws results on log-log axes: size against latency or
// bandwidth, one line per result.
func plotResults(title string, rs []*Result) string {
	var ss []series
	unit := "us"
	for _, r := range rs {
		s := series{name: fmt.Sprintf("%s (%s)", r.Implementation, r.Transport)}
		unit = r.Unit
		for _, p := range r.Results {
			// Log axes have no 0: a size-0 point is drawn only when it is
			// the only one (barrier), at 1.
			x := float64(p.Size)
			if x == 0 && len(r.Results) == 1 {
				x = 1
			}
			if x > 0 && p.Value > 0 {
				s.xs = append(s.xs, x)
				s.ys = append(s.ys, p.Value)
			}
		}
		ss = append(ss, s)
	}
	ylabel := "latency (us)"
	if unit == "MB/s" {
		ylabel = "bandwidth (MB/s)"
	}
	return plotSVG(title, "message size (bytes)", ylabel, ss)
}

// plotSVG renders series on log-log axes with decade grid lines.
func plotSVG(title, xlabel, ylabel string, ss []series) string {
	const w, h = 760.0, 480.0
	const left, right, top, bottom = 80.0, 180.0, 40.0, 60.0
	pw, ph := w-left-right, h-top-bottom
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for i := range s.xs {
			xmin, xmax = math.Min(xmin, s.xs[i]), math.Max(xmax, s.xs[i])
			ymin, ymax = math.Min(ymin, s.ys[i]), math.Max(ymax, s.ys[i])
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax, ymin, ymax = 1, 10, 1, 10
	}
	// Sizes are powers of two: the x axis runs over powers of 16.
	lx0, lx1 := math.Floor(math.Log2(xmin)/4)*4, math.Ceil(math.Log2(xmax)/4)*4
	ly0, ly1 := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
	if lx1 == lx0 {
		lx1 += 4
	}
	if ly1 == ly0 {
		ly1++
	}
	px := func(x float64) float64 { return left + (math.Log2(x)-lx0)/(lx1-lx0)*pw }
	py := func(y float64) float64 { return top + ph - (math.Log10(y)-ly0)/(ly1-ly0)*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%g" y="24" font-size="15" text-anchor="middle">%s</text>`+"\n", left+pw/2, html.EscapeString(title))
	for e := lx0; e <= lx1; e += 4 {
		x := px(math.Exp2(e))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#ddd"/>`+"\n", x, top, x, top+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n", x, top+ph+18, sizeLabel(math.Exp2(e)))
	}
	for e := ly0; e <= ly1; e++ {
		y := py(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, left+pw, y)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, y, numLabel(math.Pow(10, e)))
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="black"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", left+pw/2, h-16, html.EscapeString(xlabel))
	fmt.Fprintf(&b, `<text transform="translate(20,%g) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+ph/2, html.EscapeString(ylabel))
	for i, s := range ss {
		color := palette[i%len(palette)]
		var pts []string
		for j := range s.xs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.xs[j]), py(s.ys[j])))
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
			for _, p := range pts {
				xy := strings.Split(p, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`+"\n", xy[0], xy[1], color)
			}
		}
		ly := top + 10 + float64(i)*20
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"/>`+"\n", left+pw+12, ly, left+pw+32, ly, color)
		fmt.Fprintf(&b, `<text x="%g" y="%g" dominant-baseline="middle">%s</text>`+"\n", left+pw+38, ly, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func sizeLabel(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%gG", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%gM", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%gK", v/(1<<10))
	}
	return fmt.Sprintf("%g", v)
}

func numLabel(v float64) string {
	if v >= 1e4 || v < 1e-2 {
		return fmt.Sprintf("%.0e", v)
	}
	return fmt.Sprintf("%g", v)
}

// runPlot draws JSON result files into one SVG: bench plot -o out.svg a.json b.json
func runPlot(args []string, stdout, stderr io.Writer) int {
	out := ""
	title := ""
	var files []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-o":
			if i+1 < len(args) {
				out = args[i+1]
				i++
			}
		case "-title":
			if i+1 < len(args) {
				title = args[i+1]
				i++
			}
		default:
			files = append(files, args[i])
		}
	}
	if out == "" || len(files) == 0 {
		fmt.Fprintln(stderr, "usage: bench plot -o OUT.svg [-title T] RESULT.json...")
		return 2
	}
	var rs []*Result
	for _, f := range files {
		r, err := readResult(f)
		if err != nil {
			fmt.Fprintf(stderr, "bench plot: %v\n", err)
			return 1
		}
		rs = append(rs, r)
	}
	if title == "" {
		title = fmt.Sprintf("%s, %d ranks", rs[0].Benchmark, rs[0].Ranks)
	}
	if err := os.WriteFile(out, []byte(plotResults(title, rs)), 0o644); err != nil {
		fmt.Fprintf(stderr, "bench plot: %v\n", err)
		return 1
	}
	return 0
}

func readResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// validate checks a result against the schema BENCHMARKS.md documents.
func (r *Result) validate() error {
	switch {
	case r.Schema != schema:
		return fmt.Errorf("schema %q, want %q", r.Schema, schema)
	case r.Benchmark == "" || r.Implementation == "":
		return fmt.Errorf("benchmark or implementation missing")
	case r.Ranks < 1:
		return fmt.Errorf("ranks %d", r.Ranks)
	case r.Unit != "us" && r.Unit != "MB/s":
		return fmt.Errorf("unit %q", r.Unit)
	}
	for i, p := range r.Results {
		if p.Size < 0 || p.Iterations < 1 || math.IsNaN(p.Value) || p.Value < 0 {
			return fmt.Errorf("result %d: %+v", i, p)
		}
		if i > 0 && p.Size <= r.Results[i-1].Size {
			return fmt.Errorf("result %d: sizes not increasing", i)
		}
	}
	return nil
}
