# parker: see README.md. `make` builds bin/parker; `make test` installs what
# the tests need (hack/deps.sh) and runs every test plus a short fuzz run.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME  ?= 15s
# Fuzz targets, as package:target pairs (hack/fuzz.sh runs them).
FUZZ      := ./image/trailer:FuzzRead ./tests:FuzzStubTrailer ./tests:FuzzStubLZ4 ./image:FuzzReader ./internal/human:FuzzParseSize ./internal/walk:FuzzCleanTarget ./supervisor:FuzzElfInterp ./cgroup:FuzzLayout ./closure:FuzzParseELF ./internal/ldcache:FuzzParse

.PHONY: all build test unit fuzz deps bench clean

all: build

# parker with the run-time stub and helper embedded (hack/build.sh).
build:
	GO=$(GO) VERSION=$(VERSION) bash hack/build.sh bin/parker

deps:
	bash hack/deps.sh

test: deps unit fuzz

unit:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt would change the files above"; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m ./...
	@# The run tests again, on a parker that embeds the Go stub
	@# (cmd/parker-stub): what make builds where no C compiler targets GOARCH.
	STUB=go GO=$(GO) VERSION=test bash hack/build.sh bin/parker-gostub
	PARKER_BIN=$(CURDIR)/bin/parker-gostub PARKER_TEST_STUB=go CGO_ENABLED=0 \
		$(GO) test -count=1 -timeout 20m -run 'TestRun|TestStub|TestClosure' ./tests

fuzz:
	GO=$(GO) bash hack/fuzz.sh $(FUZZTIME) $(FUZZ)

bench: deps build
	bash hack/bench.sh
	bash hack/bench-start.sh
	bash hack/bench-closure.sh

clean:
	rm -rf bin cmd/parker/stubs
