// Command heat2d solves the heat equation on a square plate to steady
// state by Jacobi iteration, on a 2-D grid of ranks. The top edge is held
// at 100 degrees, the other edges at 0.
//
// It shows: a Cartesian grid of ranks (DimsCreate, CartCreate), halo
// exchange with neighbours found by Shift (ProcNull past the plate's
// edges: no special case), rows sent as they are and columns packed with
// comm.Pack, all with nonblocking Isend/Irecv and one Waitall, and the
// residual combined with Allreduce(Max).
//
// It checks itself: every rank's block is gathered at rank 0 and compared,
// bit for bit, with the same iterations done serially (Jacobi updates each
// cell from the same four values in any decomposition, so the results
// must be identical). It exits non-zero at the first difference.
//
//	mpirun -np 4 ./heat2d -n 128 -pgm plate.pgm
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
)

func main() {
	n := flag.Int("n", 64, "cells along each side of the plate")
	iters := flag.Int("iters", 2000, "most iterations")
	tol := flag.Float64("tol", 1e-3, "stop when no cell changes by more than this")
	pgm := flag.String("pgm", "", "write the final temperatures to this PGM image (rank 0)")
	check := flag.Int("check", 256, "compare with a serial run when n is at most this")
	flag.Parse()
	if err := run(*n, *iters, *tol, *pgm, *check); err != nil {
		fmt.Fprintln(os.Stderr, "heat2d:", err)
		os.Exit(1)
	}
}

const hot = 100.0 // the top edge

// block is one rank's part of the plate, with a halo of one cell: rows x
// cols interior cells at [1..rows][1..cols] of a (rows+2) x (cols+2)
// row-major array.
type block struct {
	rows, cols int
	t, next    []float64
}

func (b *block) at(i, j int) int { return i*(b.cols+2) + j }

// split gives each of p parts of n cells its share: the first n%p get one
// more. It returns part k's first cell and count.
func split(n, p, k int) (first, count int) {
	q, r := n/p, n%p
	return k*q + min(k, r), q + btoi(k < r)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func run(n, iters int, tol float64, pgm string, check int) error {
	world, err := comm.Init()
	if err != nil {
		return err
	}
	defer comm.Finalize()
	dims, err := comm.DimsCreate(world.Size(), []int{0, 0})
	if err != nil {
		return err
	}
	grid, err := world.CartCreate(dims, []bool{false, false}, false)
	if err != nil {
		return err
	}
	if n < dims[0] || n < dims[1] {
		return fmt.Errorf("a plate of %d cells cannot be split over %v ranks", n, dims)
	}
	me := grid.Coords()
	r0, rows := split(n, dims[0], me[0])
	c0, cols := split(n, dims[1], me[1])
	b := &block{rows: rows, cols: cols, t: make([]float64, (rows+2)*(cols+2)), next: make([]float64, (rows+2)*(cols+2))}
	up, down := grid.Shift(0, 1) // up: the rank above (smaller row), ProcNull on the top row of ranks
	left, right := grid.Shift(1, 1)
	if up == comm.ProcNull { // the plate's top edge is in this block's halo
		for j := 0; j < cols+2; j++ {
			b.t[b.at(0, j)], b.next[b.at(0, j)] = hot, hot
		}
	}

	start := time.Now()
	k, res := 0, math.Inf(1)
	for ; k < iters && res > tol; k++ {
		if err := b.exchange(grid.Comm, up, down, left, right); err != nil {
			return err
		}
		local := b.step()
		out := []float64{0}
		if err := collectives.Allreduce(grid.Comm, []float64{local}, out, collectives.Max); err != nil {
			return err
		}
		res = out[0]
	}
	elapsed := time.Since(start)

	field, err := gather(grid, b, n, r0, c0)
	if err != nil {
		return err
	}
	if grid.Rank() != 0 {
		return nil
	}
	fmt.Printf("heat2d: %d x %d cells on %d x %d ranks: %d iterations, residual %.3g, %.3f s\n",
		n, n, dims[0], dims[1], k, res, elapsed.Seconds())
	if pgm != "" {
		if err := writePGM(pgm, field, n); err != nil {
			return err
		}
	}
	if n <= check {
		want := serial(n, k)
		for i := range want {
			if field[i] != want[i] {
				return fmt.Errorf("cell (%d, %d) is %v, the serial run gives %v", i/n, i%n, field[i], want[i])
			}
		}
		fmt.Println("heat2d: matches the serial run bit for bit")
	}
	return nil
}

// exchange fills the halo from the four neighbours: rows as they are,
// columns packed. Receives are posted first, everything at once.
func (b *block) exchange(c *comm.Comm, up, down, left, right int) error {
	w := b.cols + 2
	row := func(i int) []float64 { return b.t[b.at(i, 1) : b.at(i, 1)+b.cols] }
	col := func(j int) comm.Strided { return comm.Strided{Offset: w + j, Count: b.rows, BlockLen: 1, Stride: w} }
	sendL, _ := comm.Pack(make([]float64, b.rows), b.t, col(1))
	sendR, _ := comm.Pack(make([]float64, b.rows), b.t, col(b.cols))
	recvL, recvR := make([]float64, b.rows), make([]float64, b.rows)
	reqs := []*comm.Request{
		comm.Irecv(c, row(0), up, 0), comm.Irecv(c, row(b.rows+1), down, 1),
		comm.Irecv(c, recvL, left, 2), comm.Irecv(c, recvR, right, 3),
		comm.Isend(c, row(1), up, 1), comm.Isend(c, row(b.rows), down, 0),
		comm.Isend(c, sendL, left, 3), comm.Isend(c, sendR, right, 2),
	}
	if _, err := comm.Waitall(reqs...); err != nil {
		return err
	}
	if left != comm.ProcNull {
		comm.Unpack(b.t, recvL, col(0))
	}
	if right != comm.ProcNull {
		comm.Unpack(b.t, recvR, col(b.cols+1))
	}
	return nil
}

// step does one Jacobi update of the interior and returns the largest
// change.
func (b *block) step() float64 {
	diff := 0.0
	for i := 1; i <= b.rows; i++ {
		for j := 1; j <= b.cols; j++ {
			v := 0.25 * (b.t[b.at(i-1, j)] + b.t[b.at(i+1, j)] + b.t[b.at(i, j-1)] + b.t[b.at(i, j+1)])
			diff = max(diff, math.Abs(v-b.t[b.at(i, j)]))
			b.next[b.at(i, j)] = v
		}
	}
	b.t, b.next = b.next, b.t
	return diff
}

// gather collects the interior at rank 0 as an n x n row-major field.
func gather(grid *comm.Cart, b *block, n, r0, c0 int) ([]float64, error) {
	mine := make([]float64, 0, b.rows*b.cols+4)
	for i := 1; i <= b.rows; i++ {
		mine = append(mine, b.t[b.at(i, 1):b.at(i, 1)+b.cols]...)
	}
	// Each block travels with where it goes: its first row and column and
	// its shape, as four leading values.
	head := []float64{float64(r0), float64(c0), float64(b.rows), float64(b.cols)}
	mine = append(head, mine...)
	counts := make([]int, grid.Size())
	if err := collectives.Gather(grid.Comm, []int{len(mine)}, counts, 0); err != nil {
		return nil, err
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	all := make([]float64, total)
	if err := collectives.Gatherv(grid.Comm, mine, all, counts, nil, 0); err != nil {
		return nil, err
	}
	if grid.Rank() != 0 {
		return nil, nil
	}
	field := make([]float64, n*n)
	for off := 0; off < total; {
		r, c, rows, cols := int(all[off]), int(all[off+1]), int(all[off+2]), int(all[off+3])
		off += 4
		for i := 0; i < rows; i++ {
			copy(field[(r+i)*n+c:(r+i)*n+c+cols], all[off+i*cols:off+(i+1)*cols])
		}
		off += rows * cols
	}
	return field, nil
}

// serial runs the same iterations on the whole plate in one block.
func serial(n, iters int) []float64 {
	b := &block{rows: n, cols: n, t: make([]float64, (n+2)*(n+2)), next: make([]float64, (n+2)*(n+2))}
	for j := 0; j < n+2; j++ {
		b.t[b.at(0, j)], b.next[b.at(0, j)] = hot, hot
	}
	for range iters {
		b.step()
	}
	out := make([]float64, 0, n*n)
	for i := 1; i <= n; i++ {
		out = append(out, b.t[b.at(i, 1):b.at(i, 1)+n]...)
	}
	return out
}

// writePGM writes the field as an 8-bit grey image, hot white.
func writePGM(path string, field []float64, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "P5\n%d %d\n255\n", n, n)
	px := make([]byte, len(field))
	for i, v := range field {
		px[i] = byte(math.Round(255 * min(max(v/hot, 0), 1)))
	}
	if _, err := f.Write(px); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
