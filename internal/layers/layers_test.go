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
	{mod + "collectives", []string{mod + "launcher", mod + "mpirun", "go.uber.org/zap"}, "collectives use comm only, and never log"},
	{mod + "launcher", []string{mod + "comm", mod + "collectives", mod + "transport"}, "launcher and ranks meet only through internal/bootstrap"},
	{mod + "internal", []string{mod + "comm", mod + "collectives", mod + "launcher", mod + "transport", mod + "mpirun"}, "internal is shared below everything"},
}

// Subpackages of transport never import each other.
var transportSubs = []string{"shm", "tcp", "verbs"}

func deps(t *testing.T) map[string][]string {
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, mod+"...").Output()
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
	all := deps(t)
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
