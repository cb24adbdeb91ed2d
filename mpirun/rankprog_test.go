//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
	"github.com/parley-hpc/parley/internal/bootstrap"
)

// rankprog is the program the tests run as ranks: the test binary itself,
// reached through the "rankprog" command that testscript.RunMain puts in
// PATH. Its first argument chooses what the ranks do.
func rankprog() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "rankprog: which mode?")
		return 2
	}
	mode, args := os.Args[1], os.Args[2:]
	arg := func(i, def int) int {
		if i < len(args) {
			if n, err := strconv.Atoi(args[i]); err == nil {
				return n
			}
		}
		return def
	}
	if mode == "noinit" {
		fmt.Println("noinit ran")
		return arg(0, 0)
	}
	world, err := comm.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rankprog:", err)
		return 1
	}
	rank, size := world.Rank(), world.Size()
	if p := os.Getenv("PARLEY_TEST_PIDDIR"); p != "" {
		writeWhole(fmt.Sprintf("%s/job", p), os.Getenv(bootstrap.EnvJob), rank)
		writeWhole(fmt.Sprintf("%s/rank%d.pid", p, rank), strconv.Itoa(os.Getpid()), rank)
	}
	blockForever := func() {
		// Wait for a message nobody sends (the job is stopped from outside).
		world.Recv(make([]byte, 1), comm.AnySource, 999)
	}
	switch mode {
	case "hello":
		fmt.Printf("rank %d of %d\n", rank, size)
	case "job":
		if rank == 0 {
			fmt.Printf("job %s\n", os.Getenv(bootstrap.EnvJob))
		}
	case "exit": // rankprog exit CODE RANK: RANK exits with CODE, the others block
		if rank == arg(1, 0) {
			os.Exit(arg(0, 1))
		}
		blockForever()
	case "talk": // rankprog talk RANK CODE: every rank prints a line to stdout and to stderr; RANK then exits with CODE, the others block (or end when CODE is 0)
		fmt.Printf("out from rank %d\n", rank)
		fmt.Fprintf(os.Stderr, "err from rank %d\n", rank)
		fmt.Printf("more out from rank %d\n", rank)
		if arg(1, 0) == 0 {
			break
		}
		if rank == arg(0, 0) {
			os.Exit(arg(1, 0))
		}
		blockForever()
	case "alloc": // rankprog alloc RANK MIB: RANK allocates and touches MIB MiB, 16 MiB at a time; the others block
		if rank == arg(0, 0) {
			var keep [][]byte
			for i := 0; i < arg(1, 1024)/16; i++ {
				b := make([]byte, 16<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				keep = append(keep, b)
			}
			fmt.Printf("rank %d allocated %d MiB\n", rank, 16*len(keep))
			os.Exit(3)
		}
		blockForever()
	case "kill": // rankprog kill RANK: RANK kills itself with SIGKILL
		if rank == arg(0, 0) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		blockForever()
	case "killabort": // rankprog killabort RANK: RANK kills itself; a survivor aborts on the error it then sees
		if rank == arg(0, 1) {
			world.Recv(make([]byte, 1), (rank+1)%size, 5) // until the others are past Init
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		world.Send([]byte{1}, arg(0, 1), 5)
		if _, err := world.Recv(make([]byte, 1), arg(0, 1), 6); err != nil {
			fmt.Fprintln(os.Stderr, "rankprog:", err)
			world.Abort(3)
		}
	case "abort":
		if rank == arg(1, 0) {
			world.Abort(arg(0, 1))
		}
		blockForever()
	case "block":
		fmt.Printf("rank %d blocking\n", rank)
		blockForever()
	case "nofinalize":
		return 0
	case "cycle": // every rank waits for its right neighbour: a cycle
		world.Recv(make([]byte, 1), (rank+1)%size, 7)
	case "hangmix": // rank 0 blocks in Probe and Waitany at once, rank 1 in a barrier; a stray message waits at rank 0
		if rank == 0 {
			go world.Probe(1, 3)
			comm.Waitany(world.Irecv(make([]byte, 1), 1, 4), world.Irecv(make([]byte, 1), 1, 5))
		} else if rank == 1 {
			world.Send([]byte("stray"), 0, 9)
			collectives.Barrier(world)
		}
	case "iallreduce": // rank 0 waits in a nonblocking allreduce, rank 1 elsewhere
		if rank == 0 {
			collectives.Iallreduce(world, []float64{1}, make([]float64, 1), collectives.Sum).Wait()
		} else {
			blockForever()
		}
	case "reduceroots": // ranks 0 and 1 say root 0, rank 2 root 2: ranks 0 and 2 each wait for the other
		root := 0
		if rank == 2 {
			root = 2
		}
		collectives.Reduce(world, []int64{1}, make([]int64, 1), collectives.Sum, root)
		blockForever()
	case "stream": // a healthy ring of 4 MiB messages, forever
		out, in := make([]byte, 4<<20), make([]byte, 4<<20)
		for {
			if _, err := world.Sendrecv(out, (rank+1)%size, 1, in, (rank+size-1)%size, 1); err != nil {
				return 1
			}
		}
	case "truncate":
		if size < 2 {
			return 2
		}
		if rank == 0 {
			world.Send(make([]byte, 100), 1, 1)
		} else if rank == 1 {
			_, err := world.Recv(make([]byte, 10), 0, 1)
			var te *comm.TruncatedError
			if !errors.Is(err, comm.ErrTruncated) || !errors.As(err, &te) {
				fmt.Println("no truncation error:", err)
				return 1
			}
			fmt.Println("truncated:", err)
		}
	case "stranger": // strangers knock on the agent's socket; the job goes on
		if rank == 0 {
			knock(os.Getenv(bootstrap.EnvAgent))
		}
		world.Sendrecv([]byte{byte(rank)}, (rank+1)%size, 3, make([]byte, 1), (rank+size-1)%size, 3)
		fmt.Printf("rank %d fine\n", rank)
	case "traffic": // the property test of comm, through real processes: traffic SEED [MESSAGES PER PAIR]
		tr := commtest.Traffic{Seed: uint64(arg(0, 1)), Messages: arg(1, 8), MaxSize: 1 << 20}
		if err := tr.Run(world); err != nil {
			fmt.Fprintln(os.Stderr, "traffic:", err)
			return 1
		}
		fmt.Printf("rank %d traffic ok\n", rank)
	case "stdin":
		if rank == 0 {
			n, _ := io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			fmt.Printf("rank 0 read %d bytes\n", n)
		}
	case "env":
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "PARLEY_") && !strings.HasPrefix(kv, "PARLEY_SECRET") {
				fmt.Printf("rank %d %s\n", rank, kv)
			}
		}
	case "cpus":
		b, _ := os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Cpus_allowed_list:") {
				fmt.Printf("rank %d %s cpuset=%s\n", rank, line, os.Getenv(bootstrap.EnvCpuset))
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "rankprog: unknown mode", mode)
		return 2
	}
	if err := comm.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, "rankprog:", err)
		return 1
	}
	return 0
}

// knock connects to a bootstrap address with the wrong secret, and once
// more saying nothing at all.
func knock(addr string) {
	network, a, err := bootstrap.SplitAddr(addr)
	if err != nil {
		return
	}
	if c, err := net.Dial(network, a); err == nil {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		io.Copy(io.Discard, c)
		c.Close()
	}
	if c, err := net.Dial(network, a); err == nil {
		c.Close()
	}
}

// writeWhole writes a file that a test polls for, in one rename, so that
// the test never reads it empty or half written (every rank writes "job").
func writeWhole(path, content string, rank int) {
	tmp := fmt.Sprintf("%s.tmp%d", path, rank)
	if os.WriteFile(tmp, []byte(content), 0o644) == nil {
		os.Rename(tmp, path)
	}
}
