# The commands README.md names. `make test` is what CI runs (.ci/run).

GO      ?= go
BIN     := bin
TIMEOUT ?= 20m
PREFIX  ?= /usr/local

# What mpirun --version and --info report. A tree without git (a release
# tarball) gives VERSION on the command line.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)"
EXAMPLES := hello ring pi pingpong workers heat2d samplesort sgd particles hybrid

.PHONY: all build build-verbs test test-shipped test-race test-verbs vet clean install

all: build

build:
	mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/mpirun ./mpirun
	$(GOBUILD) -o $(BIN)/bench ./bench
	$(GOBUILD) -o $(BIN)/hello ./examples/hello
	$(GOBUILD) -o $(BIN)/ring ./examples/ring

# The RDMA build: bench and the examples with the verbs transport (cgo,
# libibverbs; Debian: libibverbs-dev), in bin/verbs. They use verbs between
# hosts where an adapter port is active, else TCP (mpirun -v says which).
# mpirun itself holds no transport: the pure-Go one starts them.
build-verbs:
	mkdir -p $(BIN)/verbs
	for p in bench examples/hello examples/ring; do \
		CGO_ENABLED=1 $(GO) build -tags verbs -trimpath -o $(BIN)/verbs/$$(basename $$p) ./$$p || exit 1; done

# make install PREFIX=/opt/parley/1.0: mpirun, bench and the examples (as
# parley-hello, parley-ring, ...) in PREFIX/bin, static and pure Go, and a
# modulefile for environment modules (Tcl) and for Lmod (Lua):
#   module use PREFIX/share/modulefiles   &&  module load parley
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/modulefiles/parley $(DESTDIR)$(PREFIX)/share/lmod/modulefiles/parley
	install -m 755 $(BIN)/mpirun $(BIN)/bench $(DESTDIR)$(PREFIX)/bin/
	for e in $(EXAMPLES); do $(GOBUILD) -o $(DESTDIR)$(PREFIX)/bin/parley-$$e ./examples/$$e || exit 1; done
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' packaging/parley.tcl.in > $(DESTDIR)$(PREFIX)/share/modulefiles/parley/$(VERSION)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' packaging/parley.lua.in > $(DESTDIR)$(PREFIX)/share/lmod/modulefiles/parley/$(VERSION).lua

vet:
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) vet -tags pmix ./internal/pmix ./comm   # the PMIx build (libpmix-dev)
	CGO_ENABLED=1 $(GO) vet -tags verbs ./...                   # the verbs build (libibverbs-dev)
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# The whole suite, twice: first as shipped (the pure-Go build users run:
# no race detector, cgo off, so the plain-store and zero-allocation paths
# execute), then under the race detector. -count=1: never a cached pass.
test: vet test-shipped test-race test-verbs
	CGO_ENABLED=0 $(GO) build ./...

test-shipped:
	CGO_ENABLED=0 $(GO) test -count=1 -timeout $(TIMEOUT) ./...

test-race:
	$(GO) test -race -count=1 -timeout $(TIMEOUT) ./...

# The verbs build's own layer: libibverbs linked, and the clean "no
# device" answer on machines without an adapter (the protocol itself is
# tested over the fake adapter in both passes above).
test-verbs:
	CGO_ENABLED=1 $(GO) test -tags verbs -count=1 ./transport/verbs

clean:
	rm -rf $(BIN)
