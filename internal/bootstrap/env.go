package bootstrap

// The PARLEY_ environment an agent gives each rank. comm.Init reads it; a
// program started without it is a world of one.
const (
	EnvJob         = "PARLEY_JOB"            // job id, also names shm segments
	EnvRank        = "PARLEY_RANK"           // world rank
	EnvSize        = "PARLEY_SIZE"           // world size
	EnvLocalRank   = "PARLEY_LOCAL_RANK"     // rank among those on the same host
	EnvLocalSize   = "PARLEY_LOCAL_SIZE"     // ranks on the same host
	EnvNode        = "PARLEY_NODE_ID"        // host identity; equal ids share memory
	EnvAgent       = "PARLEY_AGENT"          // "unix:PATH" or "tcp:HOST:PORT" of the agent
	EnvSecret      = "PARLEY_SECRET"         // hex job secret
	EnvCpuset      = "PARLEY_CPUSET"         // cpus the rank is bound to ("" if unbound)
	EnvTransport   = "PARLEY_TRANSPORT"      // auto, shm, tcp or verbs (mpirun --transport)
	EnvVerbsDevice = "PARLEY_VERBS_DEVICE"   // the RDMA adapter to use (default: the first)
	EnvVerbose     = "PARLEY_VERBOSE"        // verbosity level of the runtime's own logs
	EnvTCPAddr     = "PARLEY_TCP_ADDR"       // address to listen on (reachable from peers)
	EnvIface       = "PARLEY_IFACE"          // interface name or CIDR for TCP
	EnvOversub     = "PARLEY_OVERSUBSCRIBED" // "1" when ranks outnumber cores: poll politely
	EnvCompress    = "PARLEY_COMPRESS"       // "1" enables compression of large TCP payloads
	EnvDebugOpts   = "PARLEY_DEBUG"          // comma-separated test-only knobs
	EnvShm         = "PARLEY_SHM"            // "off": the agent could not give this host shared memory; ranks use TCP
	EnvShmSeg      = "PARLEY_SHM_SEGMENT"    // the rank's own segment under /dev/shm, created and reserved by its agent
	EnvShmMedium   = "PARLEY_SHM_MEDIUM"     // "read" or "chain": how messages above the eager limit moved faster on this host (shm.MeasureMedium)
)
