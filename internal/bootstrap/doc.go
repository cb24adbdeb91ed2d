// Package bootstrap is the protocol through which mpirun, its node agents
// and the ranks meet. It is the only thing the launcher and the ranks share
// besides the PARLEY_ environment.
//
// Three kinds of link speak it, each opened with the mutual job-secret
// handshake of internal/wire:
//
//	mpirun <-> agent   (one per host; TCP, or a socket pair for the local host)
//	agent  <-> rank    (one per rank; a Unix socket in the job's directory)
//
// Every message is a frame: a 4-byte little-endian length, a type byte and
// a body built with internal/wire's encoders. Each message type has an
// Append method and a Parse function; Parse rejects malformed bodies with
// an error, never a panic.
//
// The key-value exchange ranks use to publish their cards is a fence:
// each rank sends the pairs it put since the last fence; the agent waits
// for all of its ranks, forwards the union to mpirun; mpirun waits for all
// agents and answers every agent with the union of everything, which the
// agents hand to their ranks. Start-up cost therefore grows with the number
// of hosts, not with the square of the number of ranks.
package bootstrap
