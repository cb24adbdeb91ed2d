package bootstrap

import (
	"net"
	"reflect"
	"testing"
)

// samples are real values of every message, for round trips and as fuzz seeds.
func samples() map[Type]Msg {
	return map[Type]Msg{
		TAgentHello: &AgentHello{Node: 2, Hostname: "node2", Pid: 77, Topology: []byte{1, 2}},
		TLaunch: &Launch{JobID: "abc", Program: "/bin/prog", Args: []string{"-x", ""}, Env: []string{"A=1"},
			Wdir: "/tmp", Size: 4, Stdin: true,
			Ranks: []RankSpec{{Rank: 0, LocalRank: 0, Cpus: []int{0, 1}, Env: []string{"R=0"}}, {Rank: 3, LocalRank: 1}}},
		TStarted:   &Started{Rank: 3, Pid: 1234},
		TOutput:    &Output{Rank: 1, Stream: Stderr, Data: []byte("line\n")},
		TExited:    &Exited{Rank: 1, Pid: 5, Code: 3, Signal: 0, Initialized: true, Finalized: false, Err: "x", OOM: "cgroup limit 64 MiB"},
		TFence:     &Fence{Pairs: []KV{{Key: "card/0", Value: []byte{1, 2, 3}}, {Key: "k", Value: []byte{}}}},
		TAbort:     &Abort{Rank: 2, Code: 9, Message: "bye"},
		TSignal:    &Signal{Signal: 15},
		TReport:    &Report{Rank: 1, Progress: 77, WaitsOn: []int{2, 0}, Text: "blocked"},
		TRankHello: &RankHello{Rank: 5, Pid: 99},
	}
}

func parse(t Type, b []byte) (Msg, error) {
	switch t {
	case TAgentHello:
		return ParseAgentHello(b)
	case TLaunch:
		return ParseLaunch(b)
	case TStarted:
		return ParseStarted(b)
	case TOutput:
		return ParseOutput(b)
	case TExited:
		return ParseExited(b)
	case TFence:
		return ParseFence(b)
	case TAbort:
		return ParseAbort(b)
	case TSignal:
		return ParseSignal(b)
	case TReport:
		return ParseReport(b)
	case TRankHello:
		return ParseRankHello(b)
	}
	return nil, nil
}

func TestMessagesRoundTrip(t *testing.T) {
	for typ, m := range samples() {
		t.Run(typ.String(), func(t *testing.T) {
			b := m.Append(nil)
			got, err := parse(typ, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(m)) {
				t.Fatalf("round trip: got %+v, want %+v", got, m)
			}
			// Every strict prefix is an error, never a panic or a success
			// that silently lost fields.
			for i := 0; i < len(b); i++ {
				if _, err := parse(typ, b[:i]); err == nil && i < len(b) {
					if typ != TFence && typ != TLaunch {
						t.Fatalf("prefix of %d of %d bytes parsed", i, len(b))
					}
				}
			}
		})
	}
}

// normalize makes nil and empty slices compare equal.
func normalize(m Msg) Msg {
	if f, ok := m.(*Fence); ok {
		for i := range f.Pairs {
			if len(f.Pairs[i].Value) == 0 {
				f.Pairs[i].Value = nil
			}
		}
	}
	return m
}

func FuzzMessages(f *testing.F) {
	for typ, m := range samples() {
		f.Add(uint8(typ), m.Append(nil))
	}
	f.Fuzz(func(t *testing.T, typ uint8, b []byte) {
		m, err := parse(Type(typ), b)
		if err != nil || m == nil {
			return
		}
		// A parsed message re-encodes to something that parses the same.
		again, err := parse(Type(typ), m.Append(nil))
		if err != nil || !reflect.DeepEqual(normalize(again), normalize(m)) {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", m, again, err)
		}
	})
}

func TestCardRoundTrip(t *testing.T) {
	c := &Card{Rank: 3, Node: "n1", Hostname: "host1", Pid: 42, TCP: "10.0.0.1:4000", Shm: "parley-x-3", Verbs: []byte{7}}
	got, err := ParseCard(c.Append(nil))
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("card round trip: %+v %v", got, err)
	}
	if _, err := ParseCard([]byte{9}); err == nil {
		t.Fatal("card of another version parsed")
	}
}

func FuzzCard(f *testing.F) {
	f.Add((&Card{Rank: 1, TCP: "a:1"}).Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCard(b)
		if err != nil {
			return
		}
		// Varints have several encodings; the value must survive.
		again, err := ParseCard(c.Append(nil))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("card %+v re-encodes to %+v (%v)", c, again, err)
		}
	})
}

func TestConnFrames(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := NewConn(a), NewConn(b)
	defer ca.Close()
	defer cb.Close()
	go func() {
		ca.SendMsg(&Started{Rank: 1, Pid: 2})
		ca.Send(TFinalize, nil)
	}()
	typ, body, err := cb.Recv()
	if err != nil || typ != TStarted {
		t.Fatalf("%v %v", typ, err)
	}
	if m, err := ParseStarted(body); err != nil || m.Pid != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	typ, body, err = cb.Recv()
	if err != nil || typ != TFinalize || len(body) != 0 {
		t.Fatalf("%v %v %v", typ, body, err)
	}
}

func TestConnRejectsHugeFrame(t *testing.T) {
	a, b := net.Pipe()
	cb := NewConn(b)
	go func() { a.Write([]byte{0xff, 0xff, 0xff, 0xff, 1}); a.Close() }()
	if _, _, err := cb.Recv(); err == nil {
		t.Fatal("a 4 GiB frame was accepted")
	}
}
