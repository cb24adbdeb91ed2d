//go:build linux

package launcher

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/wire"
)

// Remote agents: mpirun listens for agents on TCP, starts one agent per
// remote host (over ssh, or with one srun step), and each agent dials
// back, proves the job secret and says which host it serves. The secret
// travels on ssh's standard input (never on a command line, where other
// users could read it), or in the environment of the srun step.

// maxConcurrentSSH caps the ssh processes starting at once: sshd's
// MaxStartups drops connections beyond its limit (10 by default).
const maxConcurrentSSH = 16

// agentStartTimeout bounds how long the agents may take to report.
var agentStartTimeout = 60 * time.Second

// sshTreeMin is the number of remote hosts from which mpirun starts agents
// as a tree: it starts about the square root of them over ssh, and each of
// those starts the agents of its share of the rest, so that no single
// machine opens hundreds of ssh connections. PARLEY_SSH_TREE_MIN changes
// it (the tests use a small value).
func sshTreeMin() int {
	if n, err := strconv.Atoi(os.Getenv("PARLEY_SSH_TREE_MIN")); err == nil && n > 0 {
		return n
	}
	return 32
}

// agentListener accepts the remote agents' connections.
type agentListener struct {
	ln   *net.TCPListener
	port int
}

// The listener is bound to the address of --iface when one is given; else
// to all addresses, since an agent may reach mpirun by any of them (its
// host may resolve mpirun's name differently, connectList).
func (j *job) listenForAgents() (*agentListener, error) {
	bind := &net.TCPAddr{}
	if j.cfg.Iface != "" {
		a, err := bootstrap.IfaceAddr(j.cfg.Iface)
		if err != nil {
			return nil, &ExitError{Code: 2, Err: err}
		}
		bind.IP = net.ParseIP(a)
	}
	ln, err := net.ListenTCP("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for agents: %w", err)
	}
	j.cleanups = append(j.cleanups, func() { ln.Close() })
	return &agentListener{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}, nil
}

// connectList is what an agent on host is told to dial: mpirun's address
// on the route to host when it resolves, then every address of this
// machine (a node name may resolve only on the nodes; the agent tries them
// in turn), as host:port,host:port.
func (al *agentListener) connectList(host string) string {
	var addrs []string
	seen := map[string]bool{}
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			addrs = append(addrs, net.JoinHostPort(a, strconv.Itoa(al.port)))
		}
	}
	if ip := al.ln.Addr().(*net.TCPAddr).IP; !ip.IsUnspecified() {
		add(ip.String()) // bound to --iface's address: only it answers
		return strings.Join(addrs, ",")
	}
	if a, err := routeTo(host); err == nil {
		add(a)
	}
	ifaddrs, _ := net.InterfaceAddrs()
	for _, ia := range ifaddrs {
		if n, ok := ia.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			add(n.IP.String())
		}
	}
	add("127.0.0.1")
	return strings.Join(addrs, ",")
}

// routeTo returns this machine's address on the route to host.
func routeTo(host string) (string, error) { return bootstrap.RouteTo(host) }

// remoteAgentPath is the mpirun that runs the agent on other hosts.
func (j *job) remoteAgentPath() (string, error) {
	if j.cfg.LaunchAgent != "" {
		return j.cfg.LaunchAgent, nil
	}
	if j.cfg.Prefix != "" {
		return filepath.Join(j.cfg.Prefix, "bin", "mpirun"), nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find this mpirun's path to start it on other hosts (give --launch-agent): %w", err)
	}
	return self, nil
}

// sshCommand is the ssh command line (without the host).
func (j *job) sshCommand() []string {
	cmd := j.cfg.SSH
	if len(cmd) == 0 {
		cmd = []string{"ssh"}
	}
	// No terminal, no X11; never wait for a password; notice a dead host.
	return append(append([]string(nil), cmd...), "-T", "-x", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
		"-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")
}

// startSSHAgents starts an agent on each remote host over ssh.
func (j *job) startSSHAgents(remote []*agentLink, al *agentListener) error {
	agentPath, err := j.remoteAgentPath()
	if err != nil {
		return err
	}
	sem := make(chan struct{}, maxConcurrentSSH)
	var wg sync.WaitGroup
	// Tree launch: the heads are started from here, each with its
	// children (the links of the children get no starter of their own).
	heads, children := remote, map[*agentLink][]*agentLink{}
	if len(remote) >= sshTreeMin() {
		heads = nil
		width := int(math.Ceil(math.Sqrt(float64(len(remote)))))
		for i := 0; i < len(remote); i += width {
			group := remote[i:min(i+width, len(remote))]
			heads = append(heads, group[0])
			children[group[0]] = group[1:]
			for _, c := range group[1:] {
				c.parent = group[0]
			}
		}
	}
	for _, l := range heads {
		argv := append(j.sshCommand(), l.host, shellQuote(agentPath), "--agent",
			"--agent-node", strconv.Itoa(l.node), "--agent-connect", al.connectList(l.host))
		if kids := children[l]; len(kids) > 0 {
			var spec []string
			for _, c := range kids {
				spec = append(spec, fmt.Sprintf("%s=%d", c.host, c.node))
			}
			argv = append(argv, "--agent-children", strings.Join(spec, ","))
			if len(j.cfg.SSH) > 0 {
				argv = append(argv, "--agent-ssh", shellQuote(strings.Join(j.cfg.SSH, " ")))
			}
		}
		if j.cfg.Verbose > 0 {
			argv = append(argv, "-"+strings.Repeat("v", j.cfg.Verbose))
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		st := &starter{cmd: cmd, stdin: stdin, stderr: &limitedBuffer{max: 8 << 10}, exited: make(chan struct{})}
		cmd.Stderr, cmd.Stdout = st.stderr, st.stderr
		l.starter = st
		j.starters = append(j.starters, st)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			j.log.Debug("starting agent", zap.String("host", l.host), zap.Strings("argv", argv))
			if err := cmd.Start(); err != nil {
				st.startErr = err
				close(st.exited)
				return
			}
			// The secret, then nothing: the agent reads one line and
			// takes the end of its input for the end of mpirun.
			io.WriteString(stdin, hex.EncodeToString(j.secret)+"\n")
			go func() {
				st.waitErr = cmd.Wait()
				close(st.exited)
			}()
		}()
	}
	wg.Wait()
	return nil
}

// acceptAgents serves the agent listener: each connection must prove the
// secret and name a remote host of the plan that has no agent yet.
func (j *job) acceptAgents(al *agentListener, byNode map[int]*agentLink) {
	gate := wire.NewGate()
	for {
		c, err := al.ln.Accept()
		if err != nil {
			return
		}
		if !gate.Enter() {
			c.Close() // too many handshakes in progress (see wire.Gate)
			continue
		}
		go func() {
			defer gate.Leave()
			conn, hello, err := bootstrap.Accept(c, j.secret, bootstrap.RoleAgent, wire.HandshakeTimeout)
			if err != nil {
				j.log.Info("refused an agent connection", zap.Error(err))
				return
			}
			node, err := strconv.Atoi(string(hello))
			l := byNode[node]
			if err != nil || l == nil || !l.claim() {
				j.log.Warn("refused an agent connection for an unknown or taken host", zap.String("hello", string(hello)))
				conn.Close()
				return
			}
			l.conn = conn
			go j.readAgent(l)
		}()
	}
}

// limitedBuffer keeps the first max bytes written to it (ssh's stderr).
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}

// whyNot says why a remote agent has not reported, for the start-up error.
func (l *agentLink) whyNot() string {
	if l.parent != nil && l.parent.starter != nil {
		return fmt.Sprintf("%s: no answer (started through the agent on %s, which said: %s)", l.host, l.parent.host, l.parent.starter.stderr.String())
	}
	st := l.starter
	if st == nil {
		return fmt.Sprintf("%s: no answer", l.host)
	}
	name := filepath.Base(st.cmd.Path)
	switch {
	case st.startErr != nil:
		return fmt.Sprintf("%s: cannot run %s: %v", l.host, name, st.startErr)
	case isClosed(st.exited):
		msg := st.stderr.String()
		if msg == "" {
			msg = "no message"
		}
		status := "exited"
		var ee *exec.ExitError
		if errors.As(st.waitErr, &ee) {
			status = fmt.Sprintf("exited with status %d", ee.ExitCode())
		}
		return fmt.Sprintf("%s: %s %s: %s", l.host, name, status, msg)
	}
	if msg := st.stderr.String(); msg != "" {
		return fmt.Sprintf("%s: no answer (%s said: %s)", l.host, name, msg)
	}
	return fmt.Sprintf("%s: no answer", l.host)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// shellQuote quotes s for the remote shell ssh runs the command in.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// stopRemote ends the ssh and srun processes of the remote agents:
// closing their input tells the agents (already told by their links
// closing) that mpirun is done.
func (j *job) stopRemote() {
	for _, st := range j.starters {
		st.stdin.Close()
		select {
		case <-st.exited:
		case <-time.After(5 * time.Second):
			if st.cmd.Process != nil {
				st.cmd.Process.Kill()
			}
			<-st.exited
		}
	}
}
