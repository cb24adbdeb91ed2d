// Package topology reads a host's processor topology from /sys (packages,
// cores, hardware threads, NUMA nodes and L3 cache domains), restricted to
// the cpus the process may use (its affinity, which reflects cgroup
// cpusets and Slurm's allocation), and encodes it for the trip from a node
// agent to mpirun, which plans ranks and bindings from it.
//
// Reading takes a root directory so that tests run on captured /sys trees
// (testdata/) as well as on the machine itself.
package topology
