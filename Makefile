# parker: see README.md. `make` builds bin/parker; `make test` installs what
# the tests need (hack/deps.sh) and runs every test plus a short fuzz run.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 15s
# Fuzz targets, as package:target pairs.
FUZZ      := ./image/trailer:FuzzRead ./image:FuzzReader ./cmd/parker:FuzzParseSize ./cmd/parker:FuzzCleanTarget

.PHONY: all build test unit fuzz deps bench clean

all: build

# parker with the run-time stub and helper embedded (hack/build.sh).
build:
	GO=$(GO) VERSION=$(VERSION) bash hack/build.sh bin/parker

deps:
	bash hack/deps.sh

test: deps unit fuzz

unit:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m ./...

fuzz:
	@set -e; for pt in $(FUZZ); do \
		pkg=$${pt%%:*}; fn=$${pt##*:}; \
		echo "fuzz $$fn ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg; \
	done

bench: deps build
	bash hack/bench.sh
	bash hack/bench-start.sh

clean:
	rm -rf bin cmd/parker/stubs
