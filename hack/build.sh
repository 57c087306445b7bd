#!/usr/bin/env bash
# Builds parker with its run-time stub and helper embedded (what `make`
# does): first cmd/parker-stub and cmd/parker-helper, static and stripped,
# into cmd/parker/stubs/ (the helper also as an LZ4 block), then parker with
# the parker_embed tag.
#
# Usage: hack/build.sh [OUT]        (default: bin/parker)
# Environment: GO (default go), VERSION (default: git describe).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/parker}
GO=${GO:-go}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export CGO_ENABLED=0

mkdir -p cmd/parker/stubs "$(dirname "$out")"
# Built beside and renamed into place, so concurrent builds (make and the
# tests) never embed a half-written file.
for p in parker-stub parker-helper; do
	tmp=cmd/parker/stubs/.$p.$$
	"$GO" build -trimpath -ldflags '-s -w' -o "$tmp" "./cmd/$p"
	mv -f "$tmp" "cmd/parker/stubs/$p"
done
# The helper is embedded as one LZ4 block (hack/lz4block): half the size.
# (It runs here, so it is built for this machine even when cross-building.)
GOOS=$("$GO" env GOHOSTOS) GOARCH=$("$GO" env GOHOSTARCH) \
	"$GO" run ./hack/lz4block cmd/parker/stubs/parker-helper cmd/parker/stubs/.parker-helper.lz4.$$
mv -f cmd/parker/stubs/.parker-helper.lz4.$$ cmd/parker/stubs/parker-helper.lz4
"$GO" build -trimpath -tags parker_embed -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/parker
