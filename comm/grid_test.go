package comm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

func TestDimsCreate(t *testing.T) {
	for _, tc := range []struct {
		n    int
		in   []int
		want []int
		bad  bool
	}{
		{6, []int{0, 0}, []int{3, 2}, false},
		{16, []int{0, 0}, []int{4, 4}, false},
		{12, []int{0, 0, 0}, []int{3, 2, 2}, false},
		{7, []int{0, 0}, []int{7, 1}, false},
		{12, []int{0, 3}, []int{4, 3}, false},
		{1, []int{0, 0}, []int{1, 1}, false},
		{24, []int{2, 0, 0}, []int{2, 4, 3}, false},
		{10, []int{3, 0}, nil, true},
		{6, []int{2, 3}, []int{2, 3}, false},
		{6, []int{2, 2}, nil, true},
		{0, []int{0}, nil, true},
		{4, nil, nil, true},
	} {
		got, err := comm.DimsCreate(tc.n, tc.in)
		if tc.bad != (err != nil) || !tc.bad && !slices.Equal(got, tc.want) {
			t.Errorf("DimsCreate(%d, %v) = %v, %v; want %v (error %v)", tc.n, tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// TestCart: a 2 x 3 grid of 7 ranks (the seventh is left out), one
// dimension periodic: coordinates, ranks, shifts (ProcNull past the open
// edge, wrapping in the periodic one), a halo exchange through Shift that
// needs no special case at the edges, and Sub.
func TestCart(t *testing.T) {
	ws := commtest.Worlds(t, 7, commtest.Shm)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		g, err := c.CartCreate([]int{2, 3}, []bool{false, true}, false)
		if err != nil {
			return err
		}
		if c.Rank() == 6 {
			if g != nil {
				return errors.New("the rank beyond the grid got a Cart")
			}
			return nil
		}
		me := g.Rank()
		if want := []int{me / 3, me % 3}; !slices.Equal(g.Coords(), want) {
			return fmt.Errorf("coords %v, want %v", g.Coords(), want)
		}
		if r, err := g.RankOf(g.Coords()); err != nil || r != me {
			return fmt.Errorf("RankOf(Coords) = %d, %v", r, err)
		}
		if r, err := g.RankOf([]int{0, -1}); err != nil || r != 2 {
			return fmt.Errorf("RankOf wrapping: %d, %v", r, err)
		}
		if _, err := g.RankOf([]int{2, 0}); !errors.Is(err, comm.ErrInvalidArg) {
			return fmt.Errorf("RankOf past an open edge: %v", err)
		}
		up, down := g.Shift(0, 1)
		if me < 3 && up != comm.ProcNull || me >= 3 && down != comm.ProcNull {
			return fmt.Errorf("shift along the open dimension: %d %d", up, down)
		}
		left, right := g.Shift(1, 1)
		if want := me/3*3 + (me%3+1)%3; right != want {
			return fmt.Errorf("right neighbour %d, want %d", right, want)
		}
		// A halo exchange along both dimensions, the same code everywhere.
		for d := 0; d < 2; d++ {
			src, dest := g.Shift(d, 1)
			got := []int64{-1}
			st, err := comm.Sendrecv(g.Comm, []int64{int64(me)}, dest, d, got, src, d)
			if err != nil {
				return err
			}
			if src == comm.ProcNull {
				if st.Source != comm.ProcNull || got[0] != -1 {
					return fmt.Errorf("receive from ProcNull: %+v %v", st, got)
				}
			} else if got[0] != int64(src) {
				return fmt.Errorf("dim %d: got %d from %d", d, got[0], src)
			}
		}
		_ = left
		row, err := g.Sub([]bool{false, true})
		if err != nil {
			return err
		}
		if row.Size() != 3 || !slices.Equal(row.Dims(), []int{3}) || row.Rank() != me%3 {
			return fmt.Errorf("row: rank %d of %d, dims %v", row.Rank(), row.Size(), row.Dims())
		}
		if n := g.Neighbors(); len(n) != 4 || n[2] != left || n[3] != right {
			return fmt.Errorf("neighbors %v", n)
		}
		return nil
	})
}

// TestSplitType: TypeShared groups the ranks of a host (here, all of
// them); another split type gives no communicator.
func TestSplitType(t *testing.T) {
	ws := commtest.Worlds(t, 3, commtest.Shm)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		node, err := c.SplitType(comm.TypeShared, -c.Rank())
		if err != nil {
			return err
		}
		if node.Size() != 3 || node.Rank() != 2-c.Rank() {
			return fmt.Errorf("node communicator: rank %d of %d", node.Rank(), node.Size())
		}
		none, err := c.SplitType(99, 0)
		if err != nil || none != nil {
			return fmt.Errorf("split type 99: %v %v", none, err)
		}
		return nil
	})
}

// TestNilComm: what Split gives a rank that opts out is nil, and using it
// returns ErrCommNull instead of panicking.
func TestNilComm(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		sub, err := c.Split(comm.Undefined, 0)
		if err != nil || sub != nil {
			return fmt.Errorf("Split(Undefined) = %v, %v", sub, err)
		}
		if sub.Rank() != -1 || sub.Size() != 0 || sub.String() != "nil" {
			return fmt.Errorf("nil communicator: rank %d size %d %q", sub.Rank(), sub.Size(), sub.String())
		}
		for name, err := range map[string]error{
			"send": sub.Send(nil, 0, 0), "free": sub.Free(),
			"dup":  func() error { _, err := sub.Dup(); return err }(),
			"wait": func() error { _, err := sub.Irecv(nil, 0, 0).Wait(); return err }(),
		} {
			if !errors.Is(err, comm.ErrCommNull) {
				return fmt.Errorf("%s on nil: %v, want ErrCommNull", name, err)
			}
		}
		return nil
	})
}

// TestWaitConditionNotCalledAfterItHolds: a blocking wait on a condition
// (Probe, Mprobe, Waitany) stops calling it once it has held, wherever in
// the wait (spinning, sleeping) it first holds. Mprobe's condition takes
// the message it finds: a call after it held took a second message and
// lost the first, which left one of several probing goroutines waiting
// for ever.
func TestWaitConditionNotCalledAfterItHolds(t *testing.T) {
	ws := commtest.Worlds(t, 1, commtest.Shm)
	for k := 1; k <= 200; k++ {
		if calls := comm.WaitForCalls(ws[0], k); calls != k {
			t.Errorf("a condition that first held at call %d was called %d times", k, calls)
		}
	}
}

// TestMprobe: with several goroutines probing one source, each message is
// received by the goroutine that probed it (Probe then Recv could take
// another's).
func TestMprobe(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		const per = 200
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per / 4 {
					msg, st, err := ws[1].Mprobe(0, comm.AnyTag)
					if err != nil {
						errs <- err
						return
					}
					buf := make([]int32, st.Count/4)
					got, err := comm.Mrecv(msg, buf)
					if err != nil || got.Count != len(buf) || buf[0] != int32(st.Tag) {
						errs <- fmt.Errorf("goroutine %d: probed %+v, received %+v %v %v", g, st, got, err, buf)
						return
					}
					if _, err := msg.Recv(nil); !errors.Is(err, comm.ErrInvalidArg) {
						errs <- fmt.Errorf("a message received twice: %v", err)
						return
					}
				}
			}()
		}
		for i := range per {
			xs := make([]int32, 1+i%5)
			xs[0] = int32(i)
			if err := comm.Send(ws[0], xs, 1, i); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if ok, _, _, _ := ws[1].Improbe(0, comm.AnyTag); ok {
			t.Error("a message left after all were received")
		}
	})
}

// TestContexts: a receive or send bounded by a context that ends first is
// withdrawn, and its error wraps ctx.Err(); the message meant for it goes
// to the next receive instead. A large send its receiver never matched is
// withdrawn from the receiver (MPI_Cancel for sends).
func TestContexts(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		buf := make([]byte, 8)
		_, err := ws[1].RecvContext(ctx, buf, 0, 1)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, comm.ErrCancelled) {
			t.Fatalf("RecvContext past its deadline: %v", err)
		}
		if err := ws[0].Send([]byte("late"), 1, 1); err != nil {
			t.Fatal(err)
		}
		if st, err := ws[1].Recv(buf, 0, 1); err != nil || string(buf[:st.Count]) != "late" {
			t.Fatalf("the next receive: %q %v", buf[:st.Count], err)
		}

		big := make([]byte, 1<<20)
		ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel2()
		// Rank 1 must make progress to answer the withdrawal: it waits
		// for a later message meanwhile.
		done := make(chan error, 1)
		go func() {
			_, err := ws[1].Recv(make([]byte, 8), 0, 3)
			done <- err
		}()
		err = ws[0].SendContext(ctx2, big, 1, 2)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("SendContext with no receiver: %v", err)
		}
		if err := ws[0].Send([]byte("next"), 1, 3); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if ok, st, _ := ws[1].Iprobe(0, 2); ok {
			t.Fatalf("the withdrawn message is still at its receiver: %+v", st)
		}
		// Matched before the deadline: delivered.
		r := ws[1].Irecv(big, 0, 4)
		got := make(chan error, 1)
		go func() {
			st, err := r.Wait()
			if err == nil && st.Count != len(big) {
				err = fmt.Errorf("received %d bytes", st.Count)
			}
			got <- err
		}()
		ctx3, cancel3 := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel3()
		if err := ws[0].SendContext(ctx3, big, 1, 4); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("a matched send: %v", err)
		}
	})
}

// TestHalo2D: the four-edge halo exchange of a 2-D block, columns
// included, in a few lines of user code: a 2 x 2 grid of ranks, each with
// a 4 x 5 block (interior) inside a 6 x 7 array (one cell of halo).
func TestHalo2D(t *testing.T) {
	ws := commtest.Worlds(t, 4, commtest.Shm)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		g, err := c.CartCreate([]int{2, 2}, []bool{false, false}, false)
		if err != nil {
			return err
		}
		const rows, cols = 6, 7 // with halo
		a := make([]float64, rows*cols)
		for i := 1; i < rows-1; i++ {
			for j := 1; j < cols-1; j++ {
				a[i*cols+j] = float64(g.Rank()*1000 + i*10 + j)
			}
		}
		col := func(j int) comm.Strided {
			return comm.Strided{Offset: cols + j, Count: rows - 2, BlockLen: 1, Stride: cols}
		}
		row := func(i int) comm.Strided {
			return comm.Strided{Offset: i*cols + 1, Count: 1, BlockLen: cols - 2, Stride: cols}
		}
		// Send my first/last interior row or column, receive into the
		// halo on the other side; ProcNull at the edges needs no case.
		exchange := func(dim, disp int, send, recv comm.Strided) error {
			src, dest := g.Shift(dim, disp)
			out, _ := comm.Pack(make([]float64, send.Len()), a, send)
			in := make([]float64, recv.Len())
			if _, err := comm.Sendrecv(g.Comm, out, dest, dim, in, src, dim); err != nil {
				return err
			}
			if src == comm.ProcNull {
				return nil
			}
			return comm.Unpack(a, in, recv)
		}
		for _, e := range []struct {
			dim, disp  int
			send, recv comm.Strided
		}{
			{0, 1, row(rows - 2), row(0)}, {0, -1, row(1), row(rows - 1)},
			{1, 1, col(cols - 2), col(0)}, {1, -1, col(1), col(cols - 1)},
		} {
			if err := exchange(e.dim, e.disp, e.send, e.recv); err != nil {
				return err
			}
		}
		// The halo column on the left holds the left neighbour's last
		// interior column.
		if left, _ := g.Shift(1, 1); left != comm.ProcNull {
			for i := 1; i < rows-1; i++ {
				if want := float64(left*1000 + i*10 + cols - 2); a[i*cols] != want {
					return fmt.Errorf("halo (%d,0) = %v, want %v", i, a[i*cols], want)
				}
			}
		} else if a[cols] != 0 {
			return fmt.Errorf("halo at an open edge was written: %v", a[cols])
		}
		return nil
	})
}
