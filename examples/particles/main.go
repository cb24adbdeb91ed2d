// Command particles moves particles through a periodic 1-D domain split
// into slabs, one per rank: after each step, the particles that left a
// slab move to the neighbouring rank.
//
// It shows: a struct type (Particle) sent and received as it is with the
// generic calls, no unsafe and no encoding in user code; a periodic 1-D
// grid (Shift); a count then a payload exchanged with Sendrecv; Gather
// and Gatherv of structs.
//
// It checks itself: rank 0 gathers every particle and compares it with
// the same steps done serially: every id once, positions bit for bit. It
// exits non-zero at the first difference.
//
//	mpirun -np 4 ./particles -n 1000 -steps 200
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

// Particle is what travels between ranks: a plain struct, fixed size,
// no pointers.
type Particle struct {
	X, Y   float64
	VX, VY float64
	ID     int64
}

const dt = 0.01

func main() {
	n := flag.Int("n", 500, "particles in all")
	steps := flag.Int("steps", 100, "time steps")
	flag.Parse()
	if err := run(*n, *steps); err != nil {
		fmt.Fprintln(os.Stderr, "particles:", err)
		os.Exit(1)
	}
}

// initial is particle id at time 0, the same on every rank.
func initial(id int) Particle {
	rng := rand.New(rand.NewPCG(uint64(id), 3))
	return Particle{X: rng.Float64(), Y: rng.Float64(), VX: rng.Float64()*2 - 1, VY: rng.Float64()*2 - 1, ID: int64(id)}
}

// move advances p by one step on the unit torus.
func move(p *Particle) {
	p.X = wrap(p.X + p.VX*dt)
	p.Y = wrap(p.Y + p.VY*dt)
}

func wrap(v float64) float64 {
	v -= math.Floor(v)
	if v >= 1 {
		v = 0
	}
	return v
}

// slab is the rank that owns position x when the domain [0, 1) is cut
// into p slabs along X.
func slab(x float64, p int) int { return min(int(x*float64(p)), p-1) }

func run(n, steps int) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	defer comm.Finalize()
	grid, err := world.CartCreate([]int{world.Size()}, []bool{true}, false)
	if err != nil {
		return err
	}
	rank, p := grid.Rank(), grid.Size()
	left, right := grid.Shift(0, 1)
	var mine []Particle
	for id := 0; id < n; id++ {
		if q := initial(id); slab(q.X, p) == rank {
			mine = append(mine, q)
		}
	}
	for range steps {
		// Move, then hand on what crossed into a neighbour's slab (a
		// step is short: at most one slab).
		var stay, toL, toR []Particle
		for _, q := range mine {
			move(&q)
			switch s := slab(q.X, p); {
			case s == rank:
				stay = append(stay, q)
			case s == (rank+1)%p:
				toR = append(toR, q)
			default:
				toL = append(toL, q)
			}
		}
		fromL, err := shift(grid.Comm, toR, right, left)
		if err != nil {
			return err
		}
		fromR, err := shift(grid.Comm, toL, left, right)
		if err != nil {
			return err
		}
		mine = append(append(stay, fromL...), fromR...)
	}

	counts := make([]int, p)
	if err := collectives.Gather(grid.Comm, []int{len(mine)}, counts, 0); err != nil {
		return err
	}
	all := make([]Particle, n)
	if err := collectives.Gatherv(grid.Comm, mine, all, counts, nil, 0); err != nil {
		return err
	}
	if rank != 0 {
		return nil
	}
	slices.SortFunc(all, func(a, b Particle) int { return int(a.ID - b.ID) })
	for id := 0; id < n; id++ {
		want := initial(id)
		for range steps {
			move(&want)
		}
		if all[id] != want {
			return fmt.Errorf("particle %d is %+v, the serial run gives %+v", id, all[id], want)
		}
	}
	fmt.Printf("particles: %d particles on %d ranks after %d steps; slabs hold %v\n", n, p, steps, counts)
	fmt.Println("particles: every particle where the serial run puts it")
	return nil
}

// shift sends out to dest and returns what src sends: first the count,
// then the particles themselves.
func shift(c *comm.Comm, out []Particle, dest, src int) ([]Particle, error) {
	count := []int64{0}
	if _, err := comm.Sendrecv(c, []int64{int64(len(out))}, dest, 1, count, src, 1); err != nil {
		return nil, err
	}
	in := make([]Particle, count[0])
	if _, err := comm.Sendrecv(c, out, dest, 2, in, src, 2); err != nil {
		return nil, err
	}
	return in, nil
}
