package launcher

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
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
}

// AgentMain connects back to mpirun, proves the job secret and serves as
// the node agent until mpirun ends the job or goes away.
func AgentMain(cfg AgentMainConfig) error {
	if cfg.Connect == "" {
		return fmt.Errorf("no mpirun address (--agent-connect)")
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hello := fmt.Appendf(nil, "%d", cfg.Node)
	conn, err := bootstrap.Dial(ctx, "tcp:"+cfg.Connect, secret, bootstrap.RoleAgent, hello)
	if err != nil {
		return err
	}
	defer conn.Close()
	if fromStdin {
		// Started over ssh: the end of standard input means ssh, or the
		// mpirun behind it, is gone. Closing the link ends the agent,
		// which kills its ranks.
		go func() {
			io.Copy(io.Discard, br)
			conn.Close()
		}()
	}
	return RunAgent(conn, AgentConfig{Node: cfg.Node, Secret: secret, Logger: cfg.Logger})
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
