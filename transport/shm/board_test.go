package shm

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestBoard: the board lies after the rings; a rank reads what its peer
// posts on its board, in the part the peer posted it in, through a mapping
// of its own (no ring attached: the peer polls nothing for it); a segment
// that belongs to another process than the card says is refused; the
// boards of a closed transport read as zeros instead of faulting.
func TestBoard(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(Config{JobID: "b", Rank: 0, Size: 2, LocalRank: 0, LocalSize: 2, Dir: dir, Slots: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(Config{JobID: "b", Rank: 1, Size: 2, LocalRank: 1, LocalSize: 2, Dir: dir, Slots: 128})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PeerBoard(1, b.Addr(), os.Getpid()+1); err == nil || !strings.Contains(err.Error(), "belongs to pid") {
		t.Fatalf("a segment of another pid: %v", err)
	}
	// The layout doc.go gives: the board after the last ring, at the end.
	if g := b.g; g.boardOff != ringsOff+g.nrings*g.ringBytes || len(g.mem) != g.boardOff+boardBytes {
		t.Errorf("board at %d of %d bytes; the rings end at %d", g.boardOff, len(g.mem), ringsOff+g.nrings*g.ringBytes)
	}
	theirs, err := a.PeerBoard(1, b.Addr(), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if b.g.activeWord(0).Load() != 0 {
		t.Error("mapping a board attached a ring")
	}
	mine := b.OwnBoard()
	data := bytes.Repeat([]byte{7}, BoardMax)
	mine.Post(1, 42, data)
	if theirs.Word(1) != 42 || theirs.Arrival() != 42 || theirs.Word(0) != 0 || !bytes.Equal(theirs.Data(1), data) {
		t.Errorf("read word %d, arrival %d, other part %d", theirs.Word(1), theirs.Arrival(), theirs.Word(0))
	}
	mine.Arrive(43)
	if theirs.Arrival() != 43 || theirs.Word(1) != 42 {
		t.Errorf("after Arrive: arrival %d, part %d", theirs.Arrival(), theirs.Word(1))
	}
	a.Close()
	b.Close()
	if theirs.Word(1) != 0 || mine.Word(1) != 0 {
		t.Error("the boards of closed transports still read their words")
	}
}
