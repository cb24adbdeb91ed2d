# The commands README.md names. `make test` is what CI runs (.ci/run).

GO      ?= go
BIN     := bin
TIMEOUT ?= 20m

.PHONY: all build test test-shipped test-race vet clean

all: build

build:
	mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/mpirun ./mpirun
	CGO_ENABLED=0 $(GO) build -o $(BIN)/bench ./bench
	CGO_ENABLED=0 $(GO) build -o $(BIN)/hello ./examples/hello
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ring ./examples/ring

vet:
	$(GO) vet ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# The whole suite, twice: first as shipped (the pure-Go build users run:
# no race detector, cgo off, so the plain-store and zero-allocation paths
# execute), then under the race detector. -count=1: never a cached pass.
test: vet test-shipped test-race
	CGO_ENABLED=0 $(GO) build ./...

test-shipped:
	CGO_ENABLED=0 $(GO) test -count=1 -timeout $(TIMEOUT) ./...

test-race:
	$(GO) test -race -count=1 -timeout $(TIMEOUT) ./...

clean:
	rm -rf $(BIN)
