# The commands README.md names. `make test` is what CI runs (.ci/run).

GO      ?= go
BIN     := bin
TIMEOUT ?= 20m

.PHONY: all build test vet race bench clean

all: build

build:
	mkdir -p $(BIN)
	$(GO) build -o $(BIN)/mpirun ./mpirun
	$(GO) build -o $(BIN)/bench ./bench
	$(GO) build -o $(BIN)/hello ./examples/hello
	$(GO) build -o $(BIN)/ring ./examples/ring

vet:
	$(GO) vet ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# The whole suite: vet, then every test under the race detector, then the
# pure-Go build with cgo off (what users copy to other machines).
test: vet
	$(GO) test -race -timeout $(TIMEOUT) ./...
	CGO_ENABLED=0 $(GO) build ./...

clean:
	rm -rf $(BIN)
