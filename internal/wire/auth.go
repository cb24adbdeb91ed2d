package wire

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion is carried by every handshake; peers of another version
// are refused with an error that names both versions.
const ProtocolVersion = 1

// SecretLen is the length of a job secret in bytes.
const SecretLen = 32

// ErrAuth is wrapped by every handshake failure caused by the peer: a wrong
// secret, another protocol, another version.
var ErrAuth = errors.New("authentication failed")

const (
	nonceLen = 16
	macLen   = sha256.Size
	magic    = "PRLY"
)

// The handshake is a mutual challenge-response proving that both ends hold
// the job secret without sending it:
//
//	acceptor -> dialer:   "PRLY" version(u16) role(u8) nonceA[16]
//	dialer   -> acceptor: "PRLY" version(u16) role(u8) nonceD[16] mac(secret, "D"|nonceA|nonceD|role|hello)[32] len(hello)(u16) hello
//	acceptor -> dialer:   mac(secret, "A"|nonceD|nonceA)[32]
//
// hello is a short opaque greeting (who the dialer is) covered by the MAC,
// so it cannot be altered in flight. Macs are compared in constant time.

// MaxHelloLen bounds the dialer's greeting.
const MaxHelloLen = 4096

// NewSecret returns a fresh random job secret.
func NewSecret() ([]byte, error) {
	s := make([]byte, SecretLen)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("job secret: %w", err)
	}
	return s, nil
}

func handshakeMAC(secret []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, secret)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func readPreamble(r io.Reader, wantRole byte) (nonce []byte, err error) {
	var b [len(magic) + 2 + 1 + nonceLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("read handshake: %w", err)
	}
	if string(b[:4]) != magic {
		return nil, fmt.Errorf("%w: peer does not speak the parley protocol", ErrAuth)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != ProtocolVersion {
		return nil, fmt.Errorf("%w: peer speaks protocol version %d, this program %d", ErrAuth, v, ProtocolVersion)
	}
	if b[6] != wantRole {
		return nil, fmt.Errorf("%w: peer is a %q endpoint, expected %q", ErrAuth, b[6], wantRole)
	}
	return append([]byte(nil), b[7:]...), nil
}

func preamble(role byte, nonce []byte) []byte {
	b := make([]byte, 0, len(magic)+3+nonceLen)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, ProtocolVersion)
	b = append(b, role)
	return append(b, nonce...)
}

// Accept runs the acceptor side of the handshake on rw for endpoints of the
// given role (a byte that keeps, say, agents from posing as ranks), and
// returns the dialer's greeting once the dialer has proven the secret. The
// caller sets deadlines on the underlying connection.
func Accept(rw io.ReadWriter, secret []byte, role byte) (hello []byte, err error) {
	nonceA := make([]byte, nonceLen)
	if _, err := rand.Read(nonceA); err != nil {
		return nil, err
	}
	if _, err := rw.Write(preamble(role, nonceA)); err != nil {
		return nil, fmt.Errorf("write handshake: %w", err)
	}
	nonceD, err := readPreamble(rw, role)
	if err != nil {
		return nil, err
	}
	var tail [macLen + 2]byte
	if _, err := io.ReadFull(rw, tail[:]); err != nil {
		return nil, fmt.Errorf("read handshake: %w", err)
	}
	n := binary.LittleEndian.Uint16(tail[macLen:])
	if n > MaxHelloLen {
		return nil, fmt.Errorf("%w: greeting of %d bytes exceeds %d", ErrAuth, n, MaxHelloLen)
	}
	hello = make([]byte, n)
	if _, err := io.ReadFull(rw, hello); err != nil {
		return nil, fmt.Errorf("read handshake greeting: %w", err)
	}
	want := handshakeMAC(secret, []byte("D"), nonceA, nonceD, []byte{role}, hello)
	if subtle.ConstantTimeCompare(want, tail[:macLen]) != 1 {
		return nil, fmt.Errorf("%w: peer does not hold this job's secret", ErrAuth)
	}
	if _, err := rw.Write(handshakeMAC(secret, []byte("A"), nonceD, nonceA)); err != nil {
		return nil, fmt.Errorf("write handshake: %w", err)
	}
	return hello, nil
}

// Dial runs the dialer side of the handshake, sending hello, and returns
// once the acceptor has proven that it holds the secret too.
func Dial(rw io.ReadWriter, secret []byte, role byte, hello []byte) error {
	if len(hello) > MaxHelloLen {
		return fmt.Errorf("handshake greeting of %d bytes exceeds %d", len(hello), MaxHelloLen)
	}
	nonceA, err := readPreamble(rw, role)
	if err != nil {
		return err
	}
	nonceD := make([]byte, nonceLen)
	if _, err := rand.Read(nonceD); err != nil {
		return err
	}
	msg := preamble(role, nonceD)
	msg = append(msg, handshakeMAC(secret, []byte("D"), nonceA, nonceD, []byte{role}, hello)...)
	msg = binary.LittleEndian.AppendUint16(msg, uint16(len(hello)))
	msg = append(msg, hello...)
	if _, err := rw.Write(msg); err != nil {
		return fmt.Errorf("write handshake: %w", err)
	}
	var mac [macLen]byte
	if _, err := io.ReadFull(rw, mac[:]); err != nil {
		return fmt.Errorf("read handshake reply (wrong secret or not a parley peer?): %w", err)
	}
	if subtle.ConstantTimeCompare(handshakeMAC(secret, []byte("A"), nonceD, nonceA), mac[:]) != 1 {
		return fmt.Errorf("%w: acceptor does not hold this job's secret", ErrAuth)
	}
	return nil
}
