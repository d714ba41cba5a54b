# agentgate — see README.md. Every target works on a fresh machine with Go 1.26.
SHELL := /bin/bash
export GOTOOLCHAIN := local
GO ?= go
BIN := bin/agentgate
PKGS := ./...
CACHE := $(CURDIR)/.cache
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: build test unit interop lint bench run fuzz vulndb clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/agentgate

# make run: the end-to-end demo on the embedded default (SQLite, local git, no network
# beyond the module proxy for the first vulnerability-database build).
run: build
	$(BIN) validate examples/payments-repo
	$(BIN) demo

# make test: every unit, integration and end-to-end test, then the cosign interop test.
test: unit interop

unit:
	$(GO) test -count=1 -timeout 25m $(PKGS)

# Verify a real gate attestation with cosign v3.1.3 (built once from the module proxy and
# cached under ~/.cache/agentgate) and sigstore-go. A separate module keeps both out of the
# gate binary.
interop:
	cd test/interop && GOFLAGS=-mod=mod $(GO) test -count=1 -timeout 30m ./...

# Build the offline Go vulnerability database (golang.org/x/vulndb at the pinned version).
vulndb: build
	$(BIN) vulndb build

lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m $(PKGS)

# Short runs of every fuzz target (go test allows one -fuzz target per run).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin
