//go:build linux

package launcher

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
)

// EnvAgentSecret carries the job secret to agents started by srun (ssh
// agents read it from their standard input instead, where no other user
// can see it).
const EnvAgentSecret = "PARLEY_AGENT_SECRET"

// AgentMainConfig configures an agent started as "mpirun --agent".
type AgentMainConfig struct {
	Node    int    // index of this host in the allocation (-1: from SLURM_NODEID)
	Connect string // mpirun's address, host:port
	Logger  *zap.Logger
	Stdin   io.Reader // where the secret comes from when not in the environment
	Verbose int
	// Children are hosts this agent starts agents on over ssh (the tree
	// launch of a large allocation); they dial mpirun themselves.
	Children []Child
	SSH      []string // the ssh command for Children
	// NodeMap names each host's index, for agents started by srun (Node
	// -1): the agent finds its own by its Slurm node name.
	NodeMap []Child
	// MeasureMedium is passed on to the agent (AgentConfig).
	MeasureMedium MediumProbe
}

// Child is a host whose agent another agent starts.
type Child struct {
	Host string
	Node int
}

// dialMpirun tries mpirun's addresses in order (the one routed toward this
// host first, then every address of mpirun's host) and returns the first
// link that proves the secret.
func dialMpirun(addrs []string, secret, hello []byte) (*bootstrap.Conn, error) {
	var errs []string
	for _, a := range addrs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := bootstrap.Dial(ctx, "tcp:"+a, secret, bootstrap.RoleAgent, hello)
		cancel()
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("cannot reach mpirun: %s", strings.Join(errs, "; "))
}

// ParseChildren parses --agent-children: "host=node,host=node".
func ParseChildren(s string) ([]Child, error) {
	var cs []Child
	for _, item := range strings.Split(s, ",") {
		h, n, ok := strings.Cut(item, "=")
		node, err := strconv.Atoi(n)
		if !ok || h == "" || err != nil || node < 0 {
			return nil, fmt.Errorf("--agent-children: %q is not host=node", item)
		}
		cs = append(cs, Child{Host: h, Node: node})
	}
	return cs, nil
}

// AgentMain connects back to mpirun, proves the job secret and serves as
// the node agent until mpirun ends the job or goes away.
func AgentMain(cfg AgentMainConfig) error {
	if cfg.Connect == "" {
		return fmt.Errorf("no mpirun address (--agent-connect)")
	}
	if cfg.Node < 0 {
		name := os.Getenv("SLURMD_NODENAME")
		if name == "" {
			name, _ = os.Hostname()
		}
		for _, c := range cfg.NodeMap {
			if c.Host == name {
				cfg.Node = c.Node
			}
		}
		if cfg.Node < 0 {
			return fmt.Errorf("node %s is not in the job's node map %v", name, cfg.NodeMap)
		}
	}
	stdin := cfg.Stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	fromStdin := os.Getenv(EnvAgentSecret) == ""
	br := bufio.NewReader(stdin)
	secret, err := agentSecret(br)
	if err != nil {
		return err
	}
	hello := fmt.Appendf(nil, "%d", cfg.Node)
	conn, err := dialMpirun(strings.Split(cfg.Connect, ","), secret, hello)
	if err != nil {
		return err
	}
	defer conn.Close()
	if len(cfg.Children) > 0 {
		stop := startChildren(cfg, secret)
		defer stop()
	}
	if fromStdin {
		// Started over ssh: the end of standard input means ssh, or the
		// mpirun behind it, is gone. Closing the link ends the agent,
		// which kills its ranks.
		go func() {
			io.Copy(io.Discard, br)
			conn.Close()
		}()
	}
	// A signal to the agent (SIGTERM from a scheduler, say) ends it the
	// same way: its ranks are killed and its files removed before it exits.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			conn.Close()
		}
	}()
	return RunAgent(conn, AgentConfig{Node: cfg.Node, Secret: secret, Logger: cfg.Logger, MeasureMedium: cfg.MeasureMedium})
}

func agentSecret(stdin *bufio.Reader) ([]byte, error) {
	s := os.Getenv(EnvAgentSecret)
	if s == "" {
		line, err := stdin.ReadString('\n')
		if err != nil && line == "" {
			return nil, fmt.Errorf("no job secret on standard input: %w", err)
		}
		s = strings.TrimSpace(line)
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("the job secret is not hex")
	}
	return b, nil
}

// startChildren starts the agents of cfg.Children over ssh, in parallel,
// with the same mpirun and secret; it returns the function that ends them
// (closing their input tells them this agent, and so mpirun's tree, is
// gone). A child that cannot start is reported on this agent's stderr,
// which mpirun shows if the child never answers.
func startChildren(cfg AgentMainConfig, secret []byte) func() {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent: cannot start children: %v\n", err)
		return func() {}
	}
	sshCmd := cfg.SSH
	if len(sshCmd) == 0 {
		sshCmd = []string{"ssh"}
	}
	var mu sync.Mutex
	var stdins []io.WriteCloser
	var cmds []*exec.Cmd
	var wg sync.WaitGroup
	for _, c := range cfg.Children {
		argv := append(append([]string(nil), sshCmd...), "-T", "-x", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
			"-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", c.Host, shellQuote(self), "--agent",
			"--agent-node", strconv.Itoa(c.Node), "--agent-connect", cfg.Connect)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Start(); err != nil {
				fmt.Fprintf(os.Stderr, "agent: ssh %s: %v\n", c.Host, err)
				return
			}
			io.WriteString(in, hex.EncodeToString(secret)+"\n")
			mu.Lock()
			stdins, cmds = append(stdins, in), append(cmds, cmd)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return func() {
		for _, in := range stdins {
			in.Close()
		}
		for _, cmd := range cmds {
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
	}
}
