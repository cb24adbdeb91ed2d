//go:build linux

package launcher

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/internal/topology"
)

// spawner starts rank processes from one OS thread that it keeps locked
// for its whole life, for two reasons:
//   - binding: a child inherits the affinity of the thread that forks it,
//     so the spawner binds its thread to the rank's cpus, starts the rank,
//     and restores its own affinity. The rank is bound before its first
//     instruction, whatever language it is written in, and Go sizes
//     GOMAXPROCS from it.
//   - the parent-death signal (PR_SET_PDEATHSIG) fires when the thread that
//     forked the child exits, not the process. Go never ends a thread
//     except one whose goroutine exits while locked, so this thread ends
//     only when the spawner stops, and then its children get SIGKILL:
//     no rank outlives its agent.
type spawner struct {
	reqs chan spawnReq
	done chan struct{}
}

type spawnReq struct {
	cmd   *exec.Cmd
	cpus  []int
	reply chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// Never unlocked: when this goroutine returns the thread ends, and
		// with it every child still running (see above).
		defer close(s.done)
		home, herr := linux.Affinity()
		close(ready)
		for req := range s.reqs {
			req.reply <- s.start(req, home, herr)
		}
	}()
	<-ready
	return s
}

func (s *spawner) start(req spawnReq, home []int, homeErr error) error {
	if len(req.cpus) > 0 {
		if homeErr != nil {
			return fmt.Errorf("cannot bind: %w", homeErr)
		}
		if err := linux.SetThreadAffinity(req.cpus); err != nil {
			return fmt.Errorf("bind to cpus %s: %w", topology.FormatList(req.cpus), err)
		}
		defer linux.SetThreadAffinity(home)
	}
	req.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return req.cmd.Start()
}

// Start starts cmd bound to cpus (none: unbound).
func (s *spawner) Start(cmd *exec.Cmd, cpus []int) error {
	reply := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, cpus: cpus, reply: reply}
	return <-reply
}

// Stop ends the spawner's thread; children still running are killed.
func (s *spawner) Stop() {
	close(s.reqs)
	<-s.done
}
