//go:build pmix && cgo

package comm

import (
	"os"

	"github.com/parley-hpc/parley/internal/pmix"
)

// This build speaks PMIx (-tags pmix, cgo): Open MPI's mpirun and srun
// --mpi=pmix start its programs.

const pmixInBuild = true

func pmixAvailable() bool { return os.Getenv("PMIX_NAMESPACE") != "" && os.Getenv("PMIX_RANK") != "" }

type pmixClient struct{ *pmix.Client }

// JobAttr: PMIx has no PMI_process_mapping; the local rank and size come
// from Local.
func (c pmixClient) JobAttr(key string) (string, bool, error) { return "", false, nil }
func (c pmixClient) Close() error                             { return nil }

// Local is the rank's place on its host, as the PMIx server says.
func (c pmixClient) Local() (int, int) {
	if c.LocalRank < 0 {
		return 0, 0
	}
	return c.LocalRank, c.LocalSize
}

func connectPMIx() (pmiClient, int, int, string, error) {
	c, err := pmix.Init()
	if err != nil {
		return nil, 0, 0, "", err
	}
	return pmixClient{c}, c.Rank, c.Size, "PMIx", nil
}
