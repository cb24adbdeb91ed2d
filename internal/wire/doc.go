// Package wire holds the byte layouts that cross process boundaries: the
// frame header every transport carries between two ranks, and a small
// append-style encoder and bounds-checked decoder that the bootstrap
// protocol and the rank cards are built from.
//
// Encoders append to a caller's slice and never fail; decoders return
// (value, bytes consumed, error) or keep a sticky error, and treat every
// length read from the input as untrusted: a malformed input yields an
// error, never a panic and never an allocation larger than the input
// itself could justify.
package wire
