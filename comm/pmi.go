package comm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/hostlist"
	"github.com/parley-hpc/parley/internal/pmi2"
)

// Direct launch: under srun --mpi=pmi2 there is no mpirun and no agent.
// Slurm's PMI-2 server is the key-value store; the job secret, which
// mpirun would have made, comes from rank 0 through the store in a first
// fence (only the job's own ranks can read it); the local rank and size
// come from Slurm's environment.

const keySecret = "parley/secret"

func optionsFromPMI() (Options, error) {
	var o Options
	c, err := pmi2.Connect()
	if err != nil {
		return o, err
	}
	o.pmi = c
	o.Rank, o.Size = c.Rank, c.Size
	// The job id names shm segments: keep it to safe characters.
	o.JobID = "slurm" + strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, os.Getenv("PMI_JOBID"))
	o.LocalRank, o.LocalSize = slurmLocal()
	if o.Rank == 0 {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return o, err
		}
		if err := c.Put(keySecret, hex.EncodeToString(secret)); err != nil {
			return o, err
		}
	}
	if err := c.Fence(); err != nil {
		return o, err
	}
	s, err := c.Get(keySecret)
	if err != nil {
		return o, fmt.Errorf("job secret from rank 0: %w", err)
	}
	if o.Secret, err = hex.DecodeString(s); err != nil {
		return o, fmt.Errorf("job secret from rank 0 is not hex")
	}
	if host := os.Getenv("SLURM_SRUN_COMM_HOST"); host != "" {
		if a, err := bootstrap.RouteTo(host); err == nil {
			o.TCPAdvertise = a
		}
	}
	o.Logger = loggerFromEnv(o.Rank)
	return o, nil
}

// slurmLocal returns the rank's place among the tasks of its node, from
// SLURM_LOCALID and SLURM_STEP_TASKS_PER_NODE (0, 0 if unknown: no shared
// memory then).
func slurmLocal() (int, int) {
	lr, err1 := strconv.Atoi(os.Getenv("SLURM_LOCALID"))
	node, err2 := strconv.Atoi(os.Getenv("SLURM_NODEID"))
	counts, err3 := hostlist.ExpandCounts(os.Getenv("SLURM_STEP_TASKS_PER_NODE"))
	if err1 != nil || err2 != nil || err3 != nil || node < 0 || node >= len(counts) || lr >= counts[node] {
		return 0, 0
	}
	return lr, counts[node]
}

// pmiKV is the store of a directly launched job.
type pmiKV struct{ c *pmi2.Client }

func (p *pmiKV) Put(key string, value []byte) error { return p.c.Put(key, hex.EncodeToString(value)) }
func (p *pmiKV) Fence() error                       { return p.c.Fence() }
func (p *pmiKV) Get(key string) ([]byte, error) {
	v, err := p.c.Get(key)
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(v)
}
func (p *pmiKV) Abort(code int, msg string) error { return p.c.Abort(msg) }

// Notice prints the line on the rank's standard error: there is no mpirun
// to gather notices under srun.
func (p *pmiKV) Notice(text string) error {
	_, err := fmt.Fprintln(os.Stderr, "parley:", text)
	return err
}

func (p *pmiKV) Finalized() error { return p.c.Finalize() }
func (p *pmiKV) Close() error     { return p.c.Close() }
