package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The doc test runs every command the documentation shows, as written,
// in a fresh copy of the repository: the shell blocks of README.md,
// BENCHMARKS.md and docs/*.md, and the usage lines of examples/*.sh
// (comment lines indented by three spaces or more). Blocks that call
// sbatch, srun or salloc run against the Slurm harness, and blocks that
// name hosts (-H, --host, --hostfile) against the emulated SSH hosts;
// every "Submitted batch job N" is waited for and must end COMPLETED with
// exit code 0:0. Go blocks compile: a whole program (package main) is
// built and run with two ranks, a fragment is compiled inside a function,
// its free variables declared by a marker on the line before the fence:
//
//	<!-- doctest: given world *comm.Comm; buf []byte -->
//
// A block that cannot run here says so on the line before its fence,
//
//	<!-- doctest: skip REASON -->
//
// and wantSkipped below lists every such block, so that marking one is a
// visible change to this file.

// wantSkipped names each block marked skip, by file and first command.
var wantSkipped = []string{
	"README.md: ibv_devinfo | grep -E 'hca_id|state'",
	"BENCHMARKS.md: bench/report.sh",
	"BENCHMARKS.md: out/device/run.sh",
}

// docFiles are the documents whose blocks run, in order within each.
func docFiles(root string) []string {
	files := []string{"README.md", "BENCHMARKS.md"}
	more, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	sh, _ := filepath.Glob(filepath.Join(root, "examples", "*.sh"))
	for _, f := range append(more, sh...) {
		rel, _ := filepath.Rel(root, f)
		files = append(files, rel)
	}
	return files
}

type docBlock struct {
	file   string
	line   int    // of the first line of the block's text
	lang   string // sh, bash, go; "usage" for a script's comment lines
	text   string
	marker string // after "doctest:" on the line before the fence
}

// first is the block's first command, how the skip list names it.
func (b docBlock) first() string {
	for _, l := range strings.Split(b.text, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			if i := strings.Index(l, " #"); i > 0 {
				l = strings.TrimSpace(l[:i])
			}
			return l
		}
	}
	return ""
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

var markerRE = regexp.MustCompile(`^<!--\s*doctest:\s*(.*?)\s*-->$`)

// markdownBlocks returns the fenced blocks of a Markdown file.
func markdownBlocks(name string, data []byte) ([]docBlock, error) {
	var blocks []docBlock
	var cur *docBlock
	var body []string
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &docBlock{file: name, line: n + 1, lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
			if m := markerRE.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
				cur.marker = m[1]
			}
			body = nil
		case cur != nil && trimmed == "```":
			cur.text = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body = append(body, line)
		}
		prev = line
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: code fence never closed", name, cur.line-1)
	}
	return blocks, sc.Err()
}

var usageRE = regexp.MustCompile(`^#\s{3,}(\S.*)$`)

// usageBlocks returns a script's usage lines: runs of comment lines
// indented by three spaces or more.
func usageBlocks(name string, data []byte) []docBlock {
	var blocks []docBlock
	var cur *docBlock
	for n, line := range strings.Split(string(data), "\n") {
		m := usageRE.FindStringSubmatch(line)
		if m == nil {
			cur = nil
			continue
		}
		if cur == nil {
			blocks = append(blocks, docBlock{file: name, line: n + 1, lang: "usage"})
			cur = &blocks[len(blocks)-1]
		}
		cur.text += m[1] + "\n"
	}
	return blocks
}

func readBlocks(root, file string) ([]docBlock, error) {
	data, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(file, ".sh") {
		return usageBlocks(file, data), nil
	}
	return markdownBlocks(file, data)
}

// freshCopy copies what a clone of the working tree holds (tracked files
// and untracked ones git does not ignore) into a new directory, so that
// nothing built before (bin/, caches) helps the documented commands.
func freshCopy(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", "../..", "ls-files", "-z", "-co", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	os.Chmod(dst, 0o755)
	os.Chmod(filepath.Dir(dst), 0o755)
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join("../..", f)
		fi, err := os.Lstat(src)
		if err != nil {
			continue // deleted in the working tree
		}
		to := filepath.Join(dst, f)
		os.MkdirAll(filepath.Dir(to), 0o755)
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(src)
			if err := os.Symlink(target, to); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

var (
	slurmWords = regexp.MustCompile(`(^|[\s;&|(])(sbatch|srun|salloc)\s`)
	hostWords  = regexp.MustCompile(`\s(-H|--host|--hostfile)\s`)
	submitted  = regexp.MustCompile(`Submitted batch job (\d+)`)
)

func TestDocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the doc test runs in the shipped pass; its commands build without the race detector anyway")
	}
	var skipped []string
	for _, file := range docFiles("../..") {
		blocks, err := readBlocks("../..", file)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			if strings.HasPrefix(b.marker, "skip") {
				skipped = append(skipped, b.file+": "+b.first())
			}
		}
		t.Run(strings.ReplaceAll(file, "/", "_"), func(t *testing.T) {
			root := freshCopy(t)
			runDocBlocks(t, root, blocks)
		})
	}
	if !slices.Equal(skipped, wantSkipped) {
		t.Errorf("blocks marked skip:\n  %s\nwant (wantSkipped in docs_test.go):\n  %s",
			strings.Join(skipped, "\n  "), strings.Join(wantSkipped, "\n  "))
	}
}

func runDocBlocks(t *testing.T, root string, blocks []docBlock) {
	var fragments []docBlock
	for i, b := range blocks {
		switch {
		case strings.HasPrefix(b.marker, "skip"):
			if strings.TrimSpace(strings.TrimPrefix(b.marker, "skip")) == "" {
				t.Errorf("%s: a skip marker needs a reason", b)
			}
			t.Logf("%s: skipped (%s): %s", b, b.marker, b.first())
		case b.file == "README.md" && i == 0:
			runOpening(t, root, b)
		case b.lang == "sh" || b.lang == "bash" || b.lang == "usage":
			if b.marker != "" {
				t.Errorf("%s: unknown marker %q", b, b.marker)
			}
			runShell(t, root, b)
		case b.lang == "go" && strings.HasPrefix(strings.TrimSpace(b.text), "package main"):
			runProgram(t, root, b, i)
		case b.lang == "go":
			fragments = append(fragments, b)
		}
		if t.Failed() {
			return // later blocks build on earlier ones
		}
	}
	if len(fragments) > 0 {
		compileFragments(t, root, fragments)
	}
}

// runOpening checks README's first block: two commands, the first runs
// ranks of an example and runs here; the second is the test command,
// which CI runs (.ci/run reads it from README.md, checked here) on a
// fresh clone, so running it inside the suite would run the suite twice.
func runOpening(t *testing.T, root string, b docBlock) {
	var cmds []string
	for _, l := range strings.Split(strings.TrimSpace(b.text), "\n") {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		cmds = append(cmds, strings.TrimSpace(l))
	}
	if len(cmds) != 2 || !strings.Contains(cmds[0], "mpirun") {
		t.Fatalf("%s: README.md must open with two commands, mpirun running an example and the tests; it has %q", b, cmds)
	}
	out, err := exec.Command("bash", filepath.Join(root, ".ci/run"), "--print-test-command").Output()
	if err != nil || strings.TrimSpace(string(out)) != cmds[1] {
		t.Errorf("%s: .ci/run --print-test-command says %q (%v); README.md's test command is %q", b, out, err, cmds[1])
	}
	runShell(t, root, docBlock{file: b.file, line: b.line, lang: "sh", text: cmds[0] + "\n"})
}

// runShell runs a block as one bash script in root, with the harness it
// needs, and waits for any batch job it submitted.
func runShell(t *testing.T, root string, b docBlock) {
	t.Helper()
	if slurmWords.MatchString(b.text) {
		needSlurm(t)
	}
	if hostWords.MatchString(b.text) {
		needHosts(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", b.text)
	cmd.Dir = root
	cmd.Env = docEnv(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s: %s (%.1fs)", b, b.first(), time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("%s: %v\n%s\n-- output:\n%s", b, err, b.text, tail(out.String(), 4000))
	}
	for _, m := range submitted.FindAllStringSubmatch(out.String(), -1) {
		checkBatchJob(t, b, m[1])
	}
}

// docEnv is the environment documented commands run in: a HOME of their
// own (a block may install into $HOME), with Go's caches where they are,
// so that nothing is downloaded or rebuilt from scratch.
func docEnv(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	v := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(v) != 3 {
		t.Fatalf("go env: %v %q", err, out)
	}
	home := t.TempDir()
	os.Chmod(home, 0o755)
	return append(os.Environ(), "HOME="+home, "GOCACHE="+v[0], "GOMODCACHE="+v[1], "GOPATH="+v[2])
}

// checkBatchJob waits for a job a documented command submitted: it must
// complete with exit code 0:0.
func checkBatchJob(t *testing.T, b docBlock, id string) {
	t.Helper()
	info, _ := exec.Command("scontrol", "-o", "show", "job", id).Output()
	stdout := ""
	if m := regexp.MustCompile(`StdOut=(\S+)`).FindSubmatch(info); m != nil {
		stdout = strings.ReplaceAll(string(m[1]), "%j", id)
	}
	out, exit := waitJob(t, batchJob{id, stdout})
	state, _ := exec.Command("scontrol", "-o", "show", "job", id).Output()
	if exit != "0:0" || !bytes.Contains(state, []byte("JobState=COMPLETED")) {
		t.Fatalf("%s: batch job %s ended with exit code %s:\n%s", b, id, exit, out)
	}
	t.Logf("%s: batch job %s completed; %s:\n%s", b, id, stdout, tail(out, 600))
}

// runProgram builds a whole program shown in a document and runs it
// with two ranks.
func runProgram(t *testing.T, root string, b docBlock, i int) {
	t.Helper()
	dir := filepath.Join(root, "doctest", fmt.Sprintf("%s-%d", strings.ReplaceAll(strings.TrimSuffix(b.file, ".md"), "/", "-"), i))
	os.MkdirAll(dir, 0o755)
	src := fmt.Sprintf("//line %s:%d\n%s", b.file, b.line, b.text)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, dir)
	cmd := exec.Command(filepath.Join(bin, "mpirun"), "-np", "2", "./"+rel)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: the program, run with 2 ranks: %v\n%s", b, err, out)
	}
	t.Logf("%s: program ran with 2 ranks:\n%s", b, out)
}

// compileFragments compiles each Go fragment as the body of a function,
// after the variables its marker gives, with every name it declares used
// afterwards (Go refuses unused variables; a fragment shows how to get
// them, not what to do next). Compile errors point at the document's
// lines through //line directives.
func compileFragments(t *testing.T, root string, frags []docBlock) {
	t.Helper()
	var src strings.Builder
	src.WriteString(`package fragments

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

var _, _, _, _, _, _ = context.Background, fmt.Sprint, log.Fatal, time.Second, comm.Init, collectives.Barrier
`)
	for i, b := range frags {
		given := ""
		if b.marker != "" {
			g, ok := strings.CutPrefix(b.marker, "given ")
			if !ok {
				t.Fatalf("%s: unknown marker %q for a Go fragment", b, b.marker)
			}
			for _, v := range strings.Split(g, ";") {
				given += "var " + strings.TrimSpace(v) + "\n"
			}
		}
		names, err := declaredNames(given + b.text)
		if err != nil {
			t.Fatalf("%s: the fragment does not parse: %v\n%s", b, err, b.text)
		}
		fmt.Fprintf(&src, "\nfunc fragment%d() {\n%s//line %s:%d\n%s", i, given, b.file, b.line, b.text)
		for _, n := range names {
			fmt.Fprintf(&src, "\t_ = %s\n", n)
		}
		src.WriteString("}\n")
	}
	dir := filepath.Join(root, "doctest", "fragments")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "fragments.go"), []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "vet", "./doctest/fragments")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Go fragments of %s do not compile: %v\n%s", frags[0].file, err, out)
	}
	t.Logf("%d Go fragments of %s compile", len(frags), frags[0].file)
}

// declaredNames returns the variables a function body declares at its
// top level.
func declaredNames(body string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p\nfunc _() {\n"+body+"\n}\n", 0)
	if err != nil {
		return nil, err
	}
	var names []string
	add := func(id *ast.Ident) {
		if id.Name != "_" && !slices.Contains(names, id.Name) {
			names = append(names, id.Name)
		}
	}
	for _, st := range f.Decls[0].(*ast.FuncDecl).Body.List {
		switch st := st.(type) {
		case *ast.AssignStmt:
			if st.Tok == token.DEFINE {
				for _, e := range st.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						add(id)
					}
				}
			}
		case *ast.DeclStmt:
			if gd, ok := st.Decl.(*ast.GenDecl); ok && gd.Tok == token.VAR {
				for _, sp := range gd.Specs {
					for _, id := range sp.(*ast.ValueSpec).Names {
						add(id)
					}
				}
			}
		}
	}
	return names, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestDocBlocksParse checks the extraction itself on a small document,
// so that a change to it cannot quietly find no blocks at all.
func TestDocBlocksParse(t *testing.T) {
	md := "# x\n\n```sh\na\nb   # c\n```\n<!-- doctest: skip no cluster here -->\n```bash\nd\n```\n```go\nx := 1\n```\n```\nplain\n```\n"
	got, err := markdownBlocks("x.md", []byte(md))
	if err != nil {
		t.Fatal(err)
	}
	want := []docBlock{
		{"x.md", 4, "sh", "a\nb   # c\n", ""},
		{"x.md", 9, "bash", "d\n", "skip no cluster here"},
		{"x.md", 12, "go", "x := 1\n", ""},
		{"x.md", 15, "", "plain\n", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("markdownBlocks:\n got %+v\nwant %+v", got, want)
	}
	if _, err := markdownBlocks("y.md", []byte("```sh\nnever closed\n")); err == nil {
		t.Error("an unclosed fence was not reported")
	}
	sh := "#!/bin/bash\n# usage:\n#\n#   make build   # note\n#   sbatch x.sh\n# or\n#   srun y\n#SBATCH -N2\nset -e\n"
	u := usageBlocks("x.sh", []byte(sh))
	if len(u) != 2 || u[0].text != "make build   # note\nsbatch x.sh\n" || u[1].text != "srun y\n" || u[0].first() != "make build" {
		t.Errorf("usageBlocks: %+v", u)
	}
	names, err := declaredNames("var a, b int\nc, _ := 1, 2\nd = 3\nif e := 1; e > 0 {}\n")
	if err != nil || !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("declaredNames: %v %v", names, err)
	}
	if !slurmWords.MatchString("make build\nsbatch examples/x.sh\n") || slurmWords.MatchString("bin/mpirun -np 2 ./examples/sbatchless\n") {
		t.Error("slurmWords")
	}
}
