//go:build linux

package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/parley-hpc/parley/internal/jobfiles"
)

// ExitError carries the status mpirun should exit with for a failure
// found before any rank started.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// resolveProgram turns the program argument into an absolute path of an
// executable. A directory holding a Go package is built once, into a
// temporary directory that cleanup removes.
func resolveProgram(p string) (path string, cleanup func(), err error) {
	cleanup = func() {}
	if p == "" {
		return "", cleanup, &ExitError{Code: 2, Err: errors.New("no program to run")}
	}
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return buildPackage(p)
	}
	if !strings.Contains(p, "/") {
		lp, err := exec.LookPath(p)
		if err != nil {
			return "", cleanup, &ExitError{Code: 127, Err: fmt.Errorf("program %q was not found in PATH", p)}
		}
		p = lp
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", cleanup, &ExitError{Code: 127, Err: err}
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", cleanup, &ExitError{Code: 127, Err: fmt.Errorf("program %s does not exist", abs)}
	case err != nil:
		return "", cleanup, &ExitError{Code: 126, Err: fmt.Errorf("program %s: %w", abs, err)}
	case !fi.Mode().IsRegular():
		return "", cleanup, &ExitError{Code: 126, Err: fmt.Errorf("program %s is not a regular file", abs)}
	case fi.Mode().Perm()&0o111 == 0:
		return "", cleanup, &ExitError{Code: 126, Err: fmt.Errorf("program %s is not executable (mode %v)", abs, fi.Mode().Perm())}
	}
	return abs, cleanup, nil
}

// buildPackage builds the Go package in dir with the go command.
func buildPackage(dir string) (string, func(), error) {
	nop := func() {}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	if len(matches) == 0 {
		return "", nop, &ExitError{Code: 126, Err: fmt.Errorf("program %s is a directory without a Go package", dir)}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", nop, &ExitError{Code: 127, Err: fmt.Errorf("program %s is a Go package, but the go command is not in PATH to build it", dir)}
	}
	abs, _ := filepath.Abs(dir)
	list := exec.Command(gobin, "list", "-f", "{{.Name}}", ".")
	list.Dir = abs
	var listErr strings.Builder
	list.Stderr = &listErr
	name, err := list.Output()
	if err != nil {
		return "", nop, &ExitError{Code: 1, Err: fmt.Errorf("program %s: go list: %v\n%s", dir, err, strings.TrimSpace(listErr.String()))}
	}
	if pkg := strings.TrimSpace(string(name)); pkg != "main" {
		return "", nop, &ExitError{Code: 2, Err: fmt.Errorf("program %s holds package %s, not a command (package main): there is nothing to run", dir, pkg)}
	}
	tmp, err := jobfiles.TempDir("build")
	if err != nil {
		return "", nop, &ExitError{Code: 1, Err: err}
	}
	cleanup := func() { os.RemoveAll(tmp) }
	out := filepath.Join(tmp, filepath.Base(abs))
	cmd := exec.Command(gobin, "build", "-o", out, ".")
	cmd.Dir = abs
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		cleanup()
		return "", nop, &ExitError{Code: 1, Err: fmt.Errorf("building the Go package in %s failed: %w", dir, err)}
	}
	return out, cleanup, nil
}
