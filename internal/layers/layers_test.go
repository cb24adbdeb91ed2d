package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/parley-hpc/parley/"

// rule: packages under from must not depend (directly or not) on any
// package under one of the forbidden prefixes.
type rule struct {
	from      string
	forbidden []string
	why       string
}

var rules = []rule{
	{mod + "transport", []string{mod + "comm", mod + "collectives", mod + "launcher", mod + "mpirun", mod + "internal/bootstrap", mod + "internal/topology"},
		"transport moves bytes and knows nothing of ranks' semantics"},
	{mod + "comm", []string{mod + "collectives", mod + "launcher", mod + "mpirun"}, "comm never imports collectives"},
	{mod + "collectives", []string{mod + "launcher", mod + "mpirun"}, "collectives sit above comm"},
	{mod + "launcher", []string{mod + "comm", mod + "collectives", mod + "transport"}, "launcher and ranks meet only through internal/bootstrap"},
	{mod + "internal", []string{mod + "comm", mod + "collectives", mod + "launcher", mod + "transport", mod + "mpirun"}, "internal is shared below everything"},
}

// Subpackages of transport never import each other.
var transportSubs = []string{"shm", "tcp", "verbs"}

// deps returns, per package of the module, its dependencies (all of them,
// or only its direct imports).
func deps(t *testing.T, direct bool) map[string][]string {
	field := ".Deps"
	if direct {
		field = ".Imports"
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range `+field+`}} {{.}}{{end}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[f[0]] = f[1:]
	}
	return m
}

func under(pkg, prefix string) bool { return pkg == prefix || strings.HasPrefix(pkg, prefix+"/") }

func TestImportDirections(t *testing.T) {
	all := deps(t, false)
	if len(all) < 5 {
		t.Fatalf("go list found only %d packages", len(all))
	}
	for pkg, ds := range all {
		if strings.HasSuffix(pkg, ".test") || strings.Contains(pkg, "/internal/layers") {
			continue
		}
		for _, r := range rules {
			if !under(pkg, r.from) {
				continue
			}
			for _, d := range ds {
				for _, f := range r.forbidden {
					if under(d, f) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.why)
					}
				}
			}
		}
		for _, d := range ds {
			if under(d, "github.com/spf13/pflag") && !under(pkg, mod+"mpirun") {
				t.Errorf("%s depends on pflag: only mpirun parses flags with it", pkg)
			}
		}
		for _, a := range transportSubs {
			if !under(pkg, mod+"transport/"+a) {
				continue
			}
			for _, b := range transportSubs {
				for _, d := range ds {
					if b != a && under(d, mod+"transport/"+b) {
						t.Errorf("%s depends on %s: transport subpackages never import each other", pkg, d)
					}
				}
			}
		}
	}
}

// TestCollectivesUseCommOnly: collectives import nothing of the project
// but comm, internal/coll (the bridge comm provides them) and
// internal/elem (the element-type rule both share): no back door into
// transports or other internals, and no logger (they may reach zap
// through comm, which logs at its edges).
func TestCollectivesUseCommOnly(t *testing.T) {
	for pkg, imports := range deps(t, true) {
		if !under(pkg, mod+"collectives") || strings.HasSuffix(pkg, "_test") {
			continue
		}
		for _, d := range imports {
			if under(d, "go.uber.org/zap") || d == "log" || d == "log/slog" {
				t.Errorf("%s imports %s: collectives never log", pkg, d)
			}
			if strings.HasPrefix(d, mod) && !under(d, mod+"comm") && d != mod+"internal/coll" && d != mod+"internal/elem" && d != mod+"internal/vec" {
				t.Errorf("%s imports %s: collectives use comm's exported API, its bridge (internal/coll), the element rule (internal/elem) and the vector kernels (internal/vec) only", pkg, d)
			}
		}
	}
}
