//go:build linux

package launcher

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Allocations of batch schedulers other than Slurm, read as Open MPI
// reads them: the hosts of the job and the slots on each. mpirun then
// starts its agents over ssh (the schedulers' own remote starters, TM,
// blaunch and qrsh -inherit, are not used: agents started over ssh are
// outside the scheduler's accounting, and killed by mpirun, not by it).

// schedulerAllocation returns the hosts of the PBS/Torque, LSF or Grid
// Engine job this mpirun runs in, and where they came from; nil when it
// runs in none.
func schedulerAllocation() ([]HostSpec, string, error) {
	switch {
	case os.Getenv("PBS_NODEFILE") != "" && os.Getenv("PBS_JOBID") != "":
		path := os.Getenv("PBS_NODEFILE")
		hosts, err := readSlotLines(path, "PBS_NODEFILE")
		return hosts, "PBS job " + os.Getenv("PBS_JOBID") + " (PBS_NODEFILE " + path + ")", err
	case os.Getenv("LSB_JOBID") != "" && os.Getenv("LSB_DJOB_HOSTFILE") != "":
		path := os.Getenv("LSB_DJOB_HOSTFILE")
		hosts, err := readSlotLines(path, "LSB_DJOB_HOSTFILE")
		return hosts, "LSF job " + os.Getenv("LSB_JOBID") + " (LSB_DJOB_HOSTFILE " + path + ")", err
	case os.Getenv("LSB_JOBID") != "" && os.Getenv("LSB_MCPU_HOSTS") != "":
		hosts, err := parseMCPUHosts(os.Getenv("LSB_MCPU_HOSTS"))
		return hosts, "LSF job " + os.Getenv("LSB_JOBID") + " (LSB_MCPU_HOSTS)", err
	case os.Getenv("PE_HOSTFILE") != "" && os.Getenv("JOB_ID") != "":
		path := os.Getenv("PE_HOSTFILE")
		hosts, err := readPEHostfile(path)
		return hosts, "Grid Engine job " + os.Getenv("JOB_ID") + " (PE_HOSTFILE " + path + ")", err
	}
	return nil, "", nil
}

// readSlotLines reads a file of one host name per slot (PBS_NODEFILE,
// LSB_DJOB_HOSTFILE): hosts in order of first appearance, each with as
// many slots as it has lines.
func readSlotLines(path, what string) ([]HostSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	var hosts []HostSpec
	index := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		if strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("%s %s:%d: %q is not a host name", what, path, n, name)
		}
		if i, ok := index[name]; ok {
			hosts[i].Slots++
			continue
		}
		index[name] = len(hosts)
		hosts = append(hosts, HostSpec{Name: name, Slots: 1})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%s %s names no hosts", what, path)
	}
	return hosts, nil
}

// parseMCPUHosts reads LSF's "host1 4 host2 2".
func parseMCPUHosts(s string) ([]HostSpec, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f)%2 != 0 {
		return nil, fmt.Errorf("LSB_MCPU_HOSTS=%q: want pairs of host and slots", s)
	}
	var hosts []HostSpec
	for i := 0; i < len(f); i += 2 {
		n, err := strconv.Atoi(f[i+1])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("LSB_MCPU_HOSTS=%q: %q slots on %s", s, f[i+1], f[i])
		}
		hosts = append(hosts, HostSpec{Name: f[i], Slots: n})
	}
	return hosts, nil
}

// readPEHostfile reads Grid Engine's PE_HOSTFILE: "host slots queue
// processors" lines.
func readPEHostfile(path string) ([]HostSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("PE_HOSTFILE: %w", err)
	}
	defer f.Close()
	var hosts []HostSpec
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("PE_HOSTFILE %s:%d: want \"host slots queue processors\"", path, n)
		}
		slots, err := strconv.Atoi(fields[1])
		if err != nil || slots < 1 {
			return nil, fmt.Errorf("PE_HOSTFILE %s:%d: %q slots", path, n, fields[1])
		}
		hosts = append(hosts, HostSpec{Name: fields[0], Slots: slots})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("PE_HOSTFILE %s: %w", path, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("PE_HOSTFILE %s names no hosts", path)
	}
	return hosts, nil
}
