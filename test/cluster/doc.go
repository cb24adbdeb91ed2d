// Package cluster holds the multi-host test harness and the tests that
// run mpirun across emulated hosts: hosts-up.sh makes N hosts out of
// network and UTS namespaces, each with its own sshd (see README-hosts.md),
// and slurm-up.sh starts a real Slurm cluster on such nodes
// (README-slurm.md). The tests bring the hosts up themselves when they run
// as root on Linux, and skip with a message otherwise.
package cluster
