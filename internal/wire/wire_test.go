package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	hs := []Header{
		{},
		{Kind: 1, Flags: FlagDirect, Len: 1 << 31, Context: 7, Source: 3, Tag: -1, Cookie: 1 << 63, Aux: 42},
		{Kind: 255, Flags: 255, Len: 0xffffffff, Context: 0xffffffff, Source: 0xffffffff, Tag: 1<<31 - 1, Cookie: ^uint64(0), Aux: ^uint64(0)},
	}
	for _, h := range hs {
		b := AppendHeader(nil, &h)
		if len(b) != HeaderLen {
			t.Fatalf("encoded %d bytes, want %d", len(b), HeaderLen)
		}
		var got Header
		n, err := ParseHeader(b, &got)
		if err != nil || n != HeaderLen || got != h {
			t.Fatalf("round trip of %+v: %+v, %d, %v", h, got, n, err)
		}
	}
}

func FuzzHeader(f *testing.F) {
	f.Add(AppendHeader(nil, &Header{Kind: 1, Len: 5, Tag: 3}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		n, err := ParseHeader(b, &h)
		if err != nil {
			if n != 0 {
				t.Fatalf("error with %d bytes consumed", n)
			}
			return
		}
		if n != HeaderLen {
			t.Fatalf("consumed %d", n)
		}
		if !bytes.Equal(AppendHeader(nil, &h), b[:HeaderLen]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestReader(t *testing.T) {
	b := AppendString(nil, "hello")
	b = AppendVarint(b, -5)
	b = AppendStrings(b, []string{"a", "", "bc"})
	b = AppendInts(b, []int{1, -2, 3})
	b = AppendBytes(b, []byte{9, 9})
	r := NewReader(b)
	if s := r.String(); s != "hello" {
		t.Fatalf("string %q", s)
	}
	if v := r.Int(); v != -5 {
		t.Fatalf("int %d", v)
	}
	if ss := r.Strings(); len(ss) != 3 || ss[2] != "bc" {
		t.Fatalf("strings %q", ss)
	}
	if vs := r.Ints(); len(vs) != 3 || vs[1] != -2 {
		t.Fatalf("ints %v", vs)
	}
	if bs := r.Bytes(); !bytes.Equal(bs, []byte{9, 9}) {
		t.Fatalf("bytes %v", bs)
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderRejectsLies(t *testing.T) {
	cases := map[string][]byte{
		"length past end":      {10, 'a'},
		"huge count":           AppendUvarint(nil, 1<<40),
		"truncated varint":     {0x80},
		"trailing bytes":       append(AppendString(nil, "x"), 1),
		"string count too big": append(AppendUvarint(nil, 1000), 0, 0),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewReader(b)
			_ = r.String()
			r.Strings()
			if err := r.Done(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("want ErrMalformed, got %v", err)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	f.Add(AppendStrings(AppendString(nil, "x"), []string{"y"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		_ = r.String()
		r.Ints()
		r.Strings()
		r.Bytes()
		r.Done() // any outcome but a panic is fine
	})
}

func handshakePair(t *testing.T, acceptSecret, dialSecret []byte, acceptRole, dialRole byte, hello []byte) (got []byte, aerr, derr error) {
	t.Helper()
	a, d := net.Pipe()
	defer a.Close()
	defer d.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		got, aerr = Accept(a, acceptSecret, acceptRole)
		if aerr != nil {
			a.Close()
		}
	}()
	derr = Dial(d, dialSecret, dialRole, hello)
	if derr != nil {
		d.Close()
	}
	<-done
	return
}

func TestHandshake(t *testing.T) {
	s1, _ := NewSecret()
	s2, _ := NewSecret()
	got, aerr, derr := handshakePair(t, s1, s1, 'r', 'r', []byte("rank 3"))
	if aerr != nil || derr != nil || string(got) != "rank 3" {
		t.Fatalf("good handshake: %q %v %v", got, aerr, derr)
	}
	_, aerr, derr = handshakePair(t, s1, s2, 'r', 'r', nil)
	if !errors.Is(aerr, ErrAuth) || derr == nil {
		t.Fatalf("wrong secret: acceptor %v, dialer %v", aerr, derr)
	}
	_, aerr, derr = handshakePair(t, s1, s1, 'a', 'r', nil)
	if aerr == nil || !errors.Is(derr, ErrAuth) {
		t.Fatalf("wrong role: acceptor %v, dialer %v", aerr, derr)
	}
}

func TestHandshakeRejectsStrangers(t *testing.T) {
	secret, _ := NewSecret()
	for name, junk := range map[string][]byte{
		"http":      []byte("GET / HTTP/1.0\r\n\r\n" + string(make([]byte, 64))),
		"silence":   nil,
		"wrong ver": append([]byte("PRLY\x09\x00r"), make([]byte, 64)...),
	} {
		t.Run(name, func(t *testing.T) {
			a, d := net.Pipe()
			go func() {
				io.Copy(io.Discard, d)
			}()
			go func() {
				d.Write(junk)
				d.Close()
			}()
			_, err := Accept(a, secret, 'r')
			a.Close()
			if err == nil {
				t.Fatal("stranger accepted")
			}
		})
	}
}
