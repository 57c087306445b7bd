# parker: see README.md. `make` builds bin/parker; `make test` installs what
# the tests need (hack/deps.sh) and runs every test plus a short fuzz run.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# A fuzz target runs for its count of inputs (about 15 s each here), or for
# FUZZTIME when given (FUZZTIME=10m make fuzz). A count, not a duration, by
# default: Go 1.26's fuzzing fails a run whose -fuzztime ends while a
# worker is mid-input ("context deadline exceeded", go.dev/issue/75804).
FUZZTIME  ?=
# Fuzz targets, as package:target:count.
FUZZ      := ./image/trailer:FuzzRead:500000 ./tests:FuzzStubTrailer:25000 ./tests:FuzzStubLZ4:25000 ./image:FuzzReader:200000 ./internal/human:FuzzParseSize:500000 ./internal/walk:FuzzCleanTarget:500000 ./supervisor:FuzzElfInterp:400000 ./cgroup:FuzzLayout:500000

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
		$(GO) test -count=1 -timeout 20m -run 'TestRun|TestStub' ./tests

fuzz:
	@set -e; for pt in $(FUZZ); do \
		pkg=$${pt%%:*}; rest=$${pt#*:}; fn=$${rest%%:*}; n=$${rest##*:}; \
		ft=$(if $(FUZZTIME),$(FUZZTIME),$${n}x); \
		echo "fuzz $$fn ($$pkg) for $$ft"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $$ft -fuzzminimizetime 5s $$pkg; \
	done

bench: deps build
	bash hack/bench.sh
	bash hack/bench-start.sh

clean:
	rm -rf bin cmd/parker/stubs
