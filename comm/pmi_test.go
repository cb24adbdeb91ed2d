package comm

import (
	"strings"
	"testing"
)

// TestMappingLocal reads MPICH's PMI_process_mapping as Hydra and Slurm
// write it: blocks of ranks per node, repeated round robin.
func TestMappingLocal(t *testing.T) {
	for _, c := range []struct {
		m              string
		rank, size     int
		wantLR, wantLS int
	}{
		{"(vector,(0,2,2))", 0, 4, 0, 2},
		{"(vector,(0,2,2))", 3, 4, 1, 2},
		{"(vector,(0,1,4))", 2, 4, 2, 4},
		{"(vector,(0,2,1))", 2, 4, 1, 2}, // round robin: ranks 0,2 on node 0
		{"(vector,(0,2,2),(2,1,1))", 4, 5, 0, 1},
		{"(vector,(0,3,2))", 4, 5, 0, 1}, // the last node gets fewer
		{"(vector,(0,2,x))", 0, 4, 0, 0},
		{"garbage", 0, 4, 0, 0},
		{"(vector,(0,0,2))", 0, 4, 0, 0},
	} {
		lr, ls := mappingLocal(c.m, c.rank, c.size)
		if lr != c.wantLR || ls != c.wantLS {
			t.Errorf("mappingLocal(%q, rank %d of %d) = %d, %d; want %d, %d", c.m, c.rank, c.size, lr, ls, c.wantLR, c.wantLS)
		}
	}
}

// TestForeignLauncher: the environments of launchers parley cannot join
// are named; a program alone in a batch script or started by hand is not
// refused.
func TestForeignLauncher(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "4", "PMIX_RANK": "0", "PMIX_NAMESPACE": "1"}, "started by Open MPI's mpirun as one of 4"},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "1", "PMIX_RANK": "0", "PMIX_NAMESPACE": "1"}, ""},
		{map[string]string{"PMIX_RANK": "0", "PMIX_NAMESPACE": "slurm.pmix.3.0", "SLURM_STEP_NUM_TASKS": "2"}, "started by srun --mpi=pmix as one of 2"},
		{map[string]string{"PMIX_RANK": "0", "PMIX_NAMESPACE": "prterun-1"}, "started by a PMIx launcher (PMIX_NAMESPACE=prterun-1)"},
		{map[string]string{"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "8"}, "started by srun as one of 8 tasks"},
		{map[string]string{"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"}, ""},
		{map[string]string{"SLURM_JOB_ID": "5", "SLURM_NTASKS": "8"}, ""}, // the batch script itself
	} {
		for _, v := range []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMIX_NAMESPACE", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_ID", "SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_MPI_TYPE"} {
			t.Setenv(v, c.env[v])
		}
		got := foreignLauncher()
		if c.want == "" && got != "" || c.want != "" && !contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.env, got, c.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
