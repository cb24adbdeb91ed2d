package comm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/hostlist"
	"github.com/parley-hpc/parley/internal/pmi1"
	"github.com/parley-hpc/parley/internal/pmi2"
)

// Direct launch: under srun --mpi=pmi2, mpiexec.hydra (MPICH), Flux, or
// with the pmix build tag Open MPI's mpirun and srun --mpi=pmix, there is
// no parley mpirun and no agent. The process manager's key-value store
// takes their place; the job secret, which mpirun would have made, comes
// from rank 0 through the store in a first fence (only the job's own
// ranks can read it); the ranks of each host find each other, for shared
// memory, from the launcher's environment or the store (localPlace).

const (
	keySecret = "parley/secret"
	keyNode   = "parley/node-"
)

// pmiClient is what a directly launched rank needs of its process
// manager: PMI-2, PMI-1 or PMIx.
type pmiClient interface {
	Put(key, value string) error
	Fence() error
	Get(key string) (string, error)
	JobAttr(key string) (string, bool, error)
	Abort(code int, msg string) error
	Finalize() error
	Close() error
}

type pmi2Client struct{ *pmi2.Client }

func (c pmi2Client) Abort(code int, msg string) error { return c.Client.Abort(msg) }

type pmi1Client struct{ *pmi1.Client }

func (c pmi1Client) Abort(code int, msg string) error { return c.Client.Abort(code) }

// directLaunch reports whether a process manager started this process.
func directLaunch() bool { return pmixAvailable() || pmi1.Available() }

// connectPMI opens the process manager's interface: PMIx where this build
// has it and the environment offers it; else PMI-2 on PMI_FD, falling back
// to PMI-1 on the same socket when the server answers PMI-2's init with
// another version (PARLEY_PMI=1 or 2 forces one); PMI-1 on PMI_PORT.
func connectPMI() (c pmiClient, rank, size int, kind string, err error) {
	if pmixAvailable() {
		return connectPMIx()
	}
	want := os.Getenv("PARLEY_PMI")
	if os.Getenv("PMI_FD") == "" || want == "1" {
		p, err := pmi1.Connect()
		if err != nil {
			return nil, 0, 0, "", err
		}
		return pmi1Client{p}, p.Rank, p.Size, "PMI-1", nil
	}
	conn, err := pmi1.FDConn()
	if err != nil {
		return nil, 0, 0, "", err
	}
	rank, _ = strconv.Atoi(os.Getenv("PMI_RANK"))
	p2, err := pmi2.New(conn, os.Getenv("PMI_JOBID"), rank)
	if err == nil {
		return pmi2Client{p2}, p2.Rank, p2.Size, "PMI-2", nil
	}
	if !errors.Is(err, pmi2.ErrVersion) || want == "2" {
		conn.Close()
		return nil, 0, 0, "", err
	}
	size, err = strconv.Atoi(os.Getenv("PMI_SIZE"))
	if err != nil {
		conn.Close()
		return nil, 0, 0, "", fmt.Errorf("pmi: the server speaks PMI-1 but PMI_SIZE=%q", os.Getenv("PMI_SIZE"))
	}
	p1, err := pmi1.New(conn, rank, size)
	if err != nil {
		conn.Close()
		return nil, 0, 0, "", err
	}
	return pmi1Client{p1}, rank, size, "PMI-1", nil
}

func optionsFromPMI() (Options, error) {
	var o Options
	c, rank, size, kind, err := connectPMI()
	if err != nil {
		return o, err
	}
	o.pmi = c
	o.Rank, o.Size = rank, size
	o.Logger = loggerFromEnv(o.Rank)
	// The job id names shm segments: keep it to safe characters.
	id := os.Getenv("PMI_JOBID")
	for _, v := range []string{"SLURM_JOB_ID", "PMIX_NAMESPACE", "FLUX_JOB_ID"} {
		if id == "" {
			id = os.Getenv(v)
		}
	}
	if id == "" {
		id = "hydra-" + os.Getenv("PMI_PORT") // Hydra gives no job id; its port or socket is what ranks share
	}
	o.JobID = "pmi" + strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, id)
	if o.Rank == 0 {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return o, err
		}
		if err := c.Put(keySecret, hex.EncodeToString(secret)); err != nil {
			return o, err
		}
	}
	host, _ := os.Hostname()
	o.LocalRank, o.LocalSize, err = localPlace(c, o.Rank, o.Size, host)
	if err != nil {
		return o, err
	}
	s, err := c.Get(keySecret)
	if err != nil {
		return o, fmt.Errorf("job secret from rank 0: %w", err)
	}
	if o.Secret, err = hex.DecodeString(s); err != nil {
		return o, fmt.Errorf("job secret from rank 0 is not hex")
	}
	o.TCPAdvertise = directAdvertise(host)
	o.Iface = os.Getenv(bootstrap.EnvIface) // PARLEY_IFACE, as mpirun's --iface
	o.Transport = os.Getenv(bootstrap.EnvTransport)
	o.Logger.Debug("started by a process manager", zap.String("interface", kind),
		zap.Int("local rank", o.LocalRank), zap.Int("local size", o.LocalSize))
	return o, nil
}

// localPlace finds the rank's place among the ranks of its host, and
// ends the first fence (which publishes the secret): from the
// launcher's environment where it says (Slurm, Hydra, Open MPI, PMIx),
// else from the job's process mapping attribute, else by publishing the
// host name and reading everybody's after a second fence.
func localPlace(c pmiClient, rank, size int, host string) (int, int, error) {
	lr, ls := launcherLocal()
	if l, ok := c.(interface{ Local() (int, int) }); ok && ls == 0 {
		lr, ls = l.Local()
	}
	if ls == 0 {
		if m, ok, err := c.JobAttr("PMI_process_mapping"); err == nil && ok {
			lr, ls = mappingLocal(m, rank, size)
		}
	}
	if ls > 0 {
		return lr, ls, c.Fence()
	}
	if err := c.Put(keyNode+strconv.Itoa(rank), hex.EncodeToString([]byte(host))); err != nil {
		return 0, 0, err
	}
	if err := c.Fence(); err != nil {
		return 0, 0, err
	}
	for r := range size {
		v, err := c.Get(keyNode + strconv.Itoa(r))
		if err != nil {
			return 0, 0, fmt.Errorf("host of rank %d: %w", r, err)
		}
		if h, _ := hex.DecodeString(v); string(h) == host {
			if r < rank {
				lr++
			}
			ls++
		}
	}
	return lr, ls, nil
}

// launcherLocal reads the local rank and size launchers put in the
// environment (0, 0 if none does).
func launcherLocal() (int, int) {
	if lr, ls := slurmLocal(); ls > 0 {
		return lr, ls
	}
	for _, pair := range [][2]string{
		{"MPI_LOCALRANKID", "MPI_LOCALNRANKS"},                       // Hydra
		{"OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"}, // Open MPI
		{"PMIX_LOCAL_RANK", "PMIX_LOCAL_SIZE"},                       // PMIx servers
	} {
		lr, err1 := strconv.Atoi(os.Getenv(pair[0]))
		ls, err2 := strconv.Atoi(os.Getenv(pair[1]))
		if err1 == nil && err2 == nil && ls > 0 && lr >= 0 && lr < ls {
			return lr, ls
		}
	}
	return 0, 0
}

// mappingLocal reads PMI_process_mapping, MPICH's description of where
// ranks run: "(vector,(start,nodes,ppn),...)", each triple giving ppn
// consecutive ranks to each of nodes nodes from node start, the triples
// repeated until every rank has a node. It returns 0, 0 when the text
// does not parse.
func mappingLocal(m string, rank, size int) (int, int) {
	s := strings.TrimSpace(m)
	body, ok := strings.CutPrefix(s, "(vector,")
	if !ok || !strings.HasSuffix(body, ")") {
		return 0, 0
	}
	body = strings.TrimSuffix(body, ")")
	var blocks [][3]int
	for _, part := range strings.Split(body, "),") {
		part = strings.Trim(part, "()")
		f := strings.Split(part, ",")
		if len(f) != 3 {
			return 0, 0
		}
		var b [3]int
		for i := range f {
			n, err := strconv.Atoi(strings.TrimSpace(f[i]))
			if err != nil || n < 0 {
				return 0, 0
			}
			b[i] = n
		}
		if b[1] == 0 || b[2] == 0 {
			return 0, 0
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 || size <= 0 || rank < 0 || rank >= size {
		return 0, 0
	}
	node := make([]int, 0, size)
	for len(node) < size {
		for _, b := range blocks {
			for n := 0; n < b[1]; n++ {
				for k := 0; k < b[2] && len(node) < size; k++ {
					node = append(node, b[0]+n)
				}
			}
		}
	}
	lr, ls := 0, 0
	for r, n := range node {
		if n == node[rank] {
			if r < rank {
				lr++
			}
			ls++
		}
	}
	return lr, ls
}

// directAdvertise picks the address a directly launched rank gives its
// peers for TCP: the one this host uses to reach the launcher's control
// host (srun's, Hydra's PMI_PORT host, or the host name Hydra was given
// for this host), else the address the host name resolves to, else the
// first non-loopback IPv4 address. Loopback only when nothing else is up.
func directAdvertise(host string) string {
	for _, h := range []string{os.Getenv("SLURM_SRUN_COMM_HOST"), hostOf(os.Getenv("PMI_PORT")), os.Getenv("MPIR_CVAR_CH3_INTERFACE_HOSTNAME"), host} {
		if h == "" {
			continue
		}
		if a, err := bootstrap.RouteTo(h); err == nil && !net.ParseIP(a).IsLoopback() {
			return a
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func hostOf(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	return h
}

// foreignLauncher names a launcher that started this process as one of
// several but that parley cannot talk to; "" when there is none (a
// program run by hand, or alone in a batch script, is a world of one).
// Without this check, each of N processes would run the whole job as a
// world of one, in silence.
func foreignLauncher() string {
	envSize := func(v string) int {
		n, _ := strconv.Atoi(os.Getenv(v))
		return n
	}
	pmix := os.Getenv("PMIX_RANK") != "" || os.Getenv("PMIX_NAMESPACE") != ""
	var fix string
	if pmixInBuild {
		fix = "the PMIx server did not answer"
	} else {
		fix = "this build has no PMIx client: build the program with -tags pmix and cgo (Debian: libpmix-dev)"
	}
	switch {
	case envSize("OMPI_COMM_WORLD_SIZE") > 1:
		return fmt.Sprintf("started by Open MPI's mpirun as one of %d processes (OMPI_COMM_WORLD_SIZE), which parley cannot join: %s, or start it with parley's mpirun",
			envSize("OMPI_COMM_WORLD_SIZE"), fix)
	case pmix && envSize("SLURM_STEP_NUM_TASKS") > 1:
		return fmt.Sprintf("started by srun --mpi=pmix as one of %d tasks, which parley cannot join: %s, or use srun --mpi=pmi2, or parley's mpirun inside the allocation",
			envSize("SLURM_STEP_NUM_TASKS"), fix)
	case pmix && envSize("OMPI_COMM_WORLD_SIZE") != 1:
		return fmt.Sprintf("started by a PMIx launcher (PMIX_NAMESPACE=%s) that parley cannot join: %s, or start it with parley's mpirun", os.Getenv("PMIX_NAMESPACE"), fix)
	case os.Getenv("SLURM_STEP_ID") != "" && envSize("SLURM_STEP_NUM_TASKS") > 1:
		mpi := os.Getenv("SLURM_MPI_TYPE")
		if mpi == "" {
			mpi = "none"
		}
		return fmt.Sprintf("started by srun as one of %d tasks without a process manager interface parley speaks (--mpi=%s): use srun --mpi=pmi2, or parley's mpirun inside the allocation",
			envSize("SLURM_STEP_NUM_TASKS"), mpi)
	}
	return ""
}

// slurmLocal returns the rank's place among the tasks of its node, from
// SLURM_LOCALID and SLURM_STEP_TASKS_PER_NODE (0, 0 if unknown).
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
type pmiKV struct {
	c pmiClient
	// syncs: the client's fence is a barrier. PMI-1's barrier and PMIx's
	// fence are; PMI-2's kvs-fence need not be (Hydra answers a rank
	// before the others arrive, making only later gets wait).
	syncs bool
}

func (p *pmiKV) FenceSyncs() bool { return p.syncs }

func (p *pmiKV) Put(key string, value []byte) error { return p.c.Put(key, hex.EncodeToString(value)) }
func (p *pmiKV) Fence() error                       { return p.c.Fence() }
func (p *pmiKV) Get(key string) ([]byte, error) {
	v, err := p.c.Get(key)
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(v)
}
func (p *pmiKV) Abort(code int, msg string) error { return p.c.Abort(code, msg) }

// Notice prints the line on the rank's standard error: there is no mpirun
// to gather notices under srun.
func (p *pmiKV) Notice(text string) error {
	_, err := fmt.Fprintln(os.Stderr, "parley:", text)
	return err
}

func (p *pmiKV) Finalized() error { return p.c.Finalize() }
func (p *pmiKV) Close() error     { return p.c.Close() }
