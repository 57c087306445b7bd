#!/usr/bin/env bash
# Builds parker with its run-time stub and helper embedded (what `make`
# does): first the stub and cmd/parker-helper, static and stripped, into
# cmd/parker/stubs/ (the helper also as an LZ4 block), then parker with the
# parker_embed tag.
#
# The stub is the C one (stub/cstub, no C library, about 17 KB), built with
# CC for the target architecture (amd64 and arm64); where no such compiler
# is found, the Go one (cmd/parker-stub), which starts slower but needs no
# C compiler.
#
# Usage: hack/build.sh [OUT]        (default: bin/parker)
# Environment: GO (default go), VERSION (the build, default: git describe;
#   --version prints the release in cmd/parker/cli.go with it: v0.1.0+VERSION),
#   STUB (c, go, or auto: c when it can be built, the default),
#   CC (default cc; for another GOARCH, ARCH-linux-gnu-gcc when installed).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/parker}
GO=${GO:-go}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
STUB=${STUB:-auto}
export CGO_ENABLED=0

mkdir -p cmd/parker/stubs "$(dirname "$out")"

# ccfor prints the C compiler for GOARCH, or fails when there is none.
ccfor() {
	local arch cc
	case $("$GO" env GOARCH) in
	amd64) arch=x86_64 ;;
	arm64) arch=aarch64 ;;
	*) return 1 ;;
	esac
	cc=${CC:-cc}
	if ! "$cc" -dumpmachine 2>/dev/null | grep -q "^$arch"; then
		cc=$arch-linux-gnu-gcc
	fi
	command -v "$cc" >/dev/null 2>&1 || return 1
	echo "$cc"
}

# cstub builds the C stub into $1 with C compiler $2, with the flags in
# stub/cstub/CFLAGS (which the tests use too).
cstub() {
	local extra=
	# Inline atomics: the out-of-line ones are in libgcc and need libc.
	[ "$("$GO" env GOARCH)" = arm64 ] && extra=-mno-outline-atomics
	# shellcheck disable=SC2046
	"$2" $(grep -v '^#' stub/cstub/CFLAGS) $extra -o "$1" stub/cstub/stub.c
}

# Built beside and renamed into place, so concurrent builds (make and the
# tests) never embed a half-written file.
tmp=cmd/parker/stubs/.parker-stub.$$
case $STUB in
c | auto)
	if cc=$(ccfor); then
		cstub "$tmp" "$cc" # a compile error fails the build
	elif [ "$STUB" = c ]; then
		echo "build.sh: no C compiler for $("$GO" env GOARCH) (CC=${CC:-cc}) to build the C stub" >&2
		exit 1
	else
		echo "build.sh: no C compiler for $("$GO" env GOARCH): embedding the Go stub, which starts slower" >&2
		"$GO" build -trimpath -ldflags '-s -w' -o "$tmp" ./cmd/parker-stub
	fi
	;;
go) "$GO" build -trimpath -ldflags '-s -w' -o "$tmp" ./cmd/parker-stub ;;
*) echo "build.sh: STUB is c, go or auto, not $STUB" >&2; exit 1 ;;
esac
mv -f "$tmp" cmd/parker/stubs/parker-stub
tmp=cmd/parker/stubs/.parker-helper.$$
"$GO" build -trimpath -ldflags '-s -w' -o "$tmp" ./cmd/parker-helper
mv -f "$tmp" cmd/parker/stubs/parker-helper
# The helper is embedded as one LZ4 block (hack/lz4block): half the size.
# (It runs here, so it is built for this machine even when cross-building.)
GOOS=$("$GO" env GOHOSTOS) GOARCH=$("$GO" env GOHOSTARCH) \
	"$GO" run ./hack/lz4block cmd/parker/stubs/parker-helper cmd/parker/stubs/.parker-helper.lz4.$$
mv -f cmd/parker/stubs/.parker-helper.lz4.$$ cmd/parker/stubs/parker-helper.lz4
"$GO" build -trimpath -tags parker_embed -ldflags "-s -w -X main.build=$version" -o "$out" ./cmd/parker
