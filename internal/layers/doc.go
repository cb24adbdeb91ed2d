// Package layers holds no code, only the test that keeps the import
// directions of DESIGN.md: mpirun -> launcher; collectives -> comm ->
// transport; any of them -> internal. transport never reaches comm,
// launcher never reaches transport or comm, comm never reaches
// collectives, only mpirun uses pflag, and collectives never logs.
package layers
