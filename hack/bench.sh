#!/usr/bin/env bash
# hack/bench.sh: parker's pack benchmark (make bench, after make build).
#
# Packs (i) a copy of /usr/local/go and (ii) a generated 1 GiB asset tree
# (internal/treegen via hack/gentree) with bin/parker and with mksquashfs at the
# same compression and level (zstd 3, gzip 6; mksquashfs -processors = the
# core count), RUNS times each with a warm page cache, and prints a Markdown
# table for the README on stdout: median wall time, payload size, size ratio
# parker/mksquashfs and peak RSS (the largest of the runs), plus the stub
# size. Progress goes to stderr.
#
# Section extract times the extraction cache's first run of the packed Go
# tree (PARKER_MODE=extract, an empty cache: extract with the digest
# checked alongside, publish, then run the target, `go version`) against
# unsquashfs -d of the same payload followed by the same run from its copy.
#
# Section fuse times a cold full read of the packed Go tree: the tree packed
# with a target script that reads every file of the tree it stands in, run
# with the page cache dropped before each run (hyperfine --prepare), side by
# side, as a packed file runs it on each rung and as the reference does:
#   R0          as root: the kernel's rung (loop device, squashfs);
#   R1          as nobody: the FUSE rung (a user namespace, FUSE served by
#               the helper), with /dev/fuse opened to users for the runs and
#               put back after (hack/nobody.sh);
#   squashfuse  as nobody: squashfuse_ll mounting the same payload at its
#               offset in a user namespace (unshare -rm), the same script
#               from its mount, then umount;
#   direct      the same script in the plain directory it was packed from.
# It reports the median wall times of FUSE_RUNS runs and R1/R0 (the goal:
# within 1.5x). hyperfine shows a failing run's stderr.
#
# Sections are functions (section_*) so more can be added (start-up time);
# choose with SECTIONS="stub go assets extract fuse". Environment:
#   RUNS=3             runs per measurement (the median is reported)
#   FUSE_RUNS=5        runs of each command of section fuse (cold reads vary)
#   BENCH_DIR=DIR      where trees and images go (default: a temp dir, removed)
#   ASSET_BYTES=N      size of the asset tree (default 1 GiB)
#   GO_TREE=DIR        tree to copy for section go (default /usr/local/go)
#   PARKER=bin/parker  the parker under test
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
FUSE_RUNS=${FUSE_RUNS:-5}
ASSET_BYTES=${ASSET_BYTES:-1073741824}
GO_TREE=${GO_TREE:-/usr/local/go}
PARKER=${PARKER:-$PWD/bin/parker}
SECTIONS=${SECTIONS:-stub go assets extract fuse}
NPROC=$(nproc)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
TIME=/usr/bin/time
# shellcheck source=hack/nobody.sh
. hack/nobody.sh

log() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

[ -x "$PARKER" ] || die "$PARKER missing: run make build (make bench does)"
command -v mksquashfs >/dev/null || die "mksquashfs missing: run hack/deps.sh"
[ -x "$TIME" ] || die "$TIME (GNU time) missing: run hack/deps.sh"

if [ -n "${BENCH_DIR:-}" ]; then
	mkdir -p "$BENCH_DIR"
	WORK=$BENCH_DIR
	trap 'fuse_close; sqfuse_end "$WORK"' EXIT
else
	WORK=$(mktemp -d /var/tmp/parker-bench.XXXXXX)
	trap 'fuse_close; sqfuse_end "$WORK"; rm -rf "$WORK"' EXIT
fi

# median: the middle of the numbers on stdin (lower middle for even counts).
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maxof() { sort -g | tail -n1; }

# measure OUT CMD...: runs CMD RUNS times (OUT removed before each run) and
# sets M_TIME (median seconds) and M_RSS (peak RSS, KiB, largest run).
measure() {
	local out=$1; shift
	local times=() rss=() i line
	for ((i = 1; i <= RUNS; i++)); do
		rm -rf "$out"
		line=$("$TIME" -f '%e %M' "$@" 2>&1 >/dev/null | tail -n1) || die "failed: $* ($line)"
		times+=("${line% *}")
		rss+=("${line#* }")
		log "  run $i: ${line% *} s, ${line#* } KiB: $1 ${*: -2}"
	done
	M_TIME=$(printf '%s\n' "${times[@]}" | median)
	M_RSS=$(printf '%s\n' "${rss[@]}" | maxof)
}

# json_field FILE KEY: a number field of `parker inspect --json`.
json_field() {
	"$PARKER" inspect --json "$1" | sed -n "s/^ *\"$2\": *\([0-9]*\).*/\1/p"
}

# warm DIR: read every file once so all runs start with a warm page cache.
warm() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }

human() { awk -v b="$1" 'BEGIN { split("B KiB MiB GiB", u); i = 1; while (b >= 1024 && i < 4) { b /= 1024; i++ } printf (i == 1 ? "%d %s" : "%.2f %s"), b, u[i] }'; }

ROWS=()

# bench_tree NAME DIR TARGET: parker vs mksquashfs, zstd 3 and gzip 6.
bench_tree() {
	local name=$1 dir=$2 target=$3 files bytes
	files=$(find "$dir" -type f | wc -l)
	bytes=$(du -sb --apparent-size "$dir" | cut -f1)
	log "$name: $files files, $(human "$bytes"); warming the page cache"
	warm "$dir"
	local comp level pt pr ps mt mr ms
	for comp in zstd:3 gzip:6; do
		level=${comp#*:}
		comp=${comp%:*}
		log "$name: parker --compression $comp --level $level"
		measure "$WORK/p.out" "$PARKER" -q -C "$dir" -o "$WORK/p.out" --compression "$comp" --level "$level" "$target"
		pt=$M_TIME pr=$M_RSS
		ps=$(json_field "$WORK/p.out" size)
		log "$name: mksquashfs -comp $comp -Xcompression-level $level -processors $NPROC"
		measure "$WORK/m.sqfs" mksquashfs "$dir" "$WORK/m.sqfs" -noappend -quiet -comp "$comp" -Xcompression-level "$level" -processors "$NPROC"
		mt=$M_TIME mr=$M_RSS
		ms=$(stat -c %s "$WORK/m.sqfs")
		ROWS+=("$(printf '| %s | %s %s | %.2f s | %.2f s | %s | %s | %.3f | %d MB | %d MB |' \
			"$name" "$comp" "$level" "$pt" "$mt" "$(human "$ps")" "$(human "$ms")" \
			"$(awk -v a="$ps" -v b="$ms" 'BEGIN { print a / b }')" $((pr / 1024)) $((mr / 1024)))")
		rm -f "$WORK/p.out" "$WORK/m.sqfs"
	done
	TREES+=("$name: $files files, $(human "$bytes")")
}

section_stub() {
	local d=$WORK/stubtree
	mkdir -p "$d"
	printf '#!/bin/sh\necho hi\n' >"$d/run"
	chmod +x "$d/run"
	"$PARKER" -q -C "$d" -o "$WORK/stub.out" run
	STUB_SIZE=$(json_field "$WORK/stub.out" stub_size)
	STUB_OFFSET=$(json_field "$WORK/stub.out" offset)
	HELPER_SIZE=$(json_field "$WORK/stub.out" helper_size)
	HELPER_RAW=$(json_field "$WORK/stub.out" helper_raw_size)
	log "stub: $STUB_SIZE bytes, helper $HELPER_SIZE bytes ($HELPER_RAW unpacked), payload offset $STUB_OFFSET"
	rm -rf "$d" "$WORK/stub.out"
}

section_go() {
	local d=$WORK/go
	log "copying $GO_TREE"
	rm -rf "$d"
	cp -a "$GO_TREE" "$d"
	# shellcheck disable=SC2016 # expanded by the script
	printf '#!/bin/sh\nexec "$(dirname "$0")/bin/go" "$@"\n' >"$d/run.sh"
	chmod +x "$d/run.sh"
	bench_tree "copy of $GO_TREE" "$d" run.sh
	rm -rf "$d"
}

section_assets() {
	local d=$WORK/assets
	log "generating a $(human "$ASSET_BYTES") asset tree"
	rm -rf "$d"
	"$GO" run ./hack/gentree -seed 1 -assets "$ASSET_BYTES" "$d"
	printf '#!/bin/sh\necho assets\n' >"$d/run.sh"
	chmod +x "$d/run.sh"
	bench_tree "asset tree ($(human "$ASSET_BYTES"), generated)" "$d" run.sh
	rm -rf "$d"
}

# section_extract: see the top.
section_extract() {
	local d=$WORK/xgo off
	log "extract: copying $GO_TREE and packing it"
	rm -rf "$d"
	cp -a "$GO_TREE" "$d"
	# shellcheck disable=SC2016 # expanded by the script
	printf '#!/bin/sh\nexec "$(dirname "$0")/bin/go" "$@"\n' >"$d/run.sh"
	chmod +x "$d/run.sh"
	"$PARKER" -q -C "$d" -o "$WORK/x.out" run.sh
	rm -rf "$d"
	off=$(json_field "$WORK/x.out" offset)
	cat "$WORK/x.out" >/dev/null
	# Both write into a tmpfs: on this VM the disk slows each run that
	# follows a few hundred MB of writes several-fold (unsquashfs too:
	# 0.6, 2.6, 3.9 s), which would time the disk's credit, not the tools.
	local t=$WORK/xtmpfs
	mkdir -p "$t"
	mount -t tmpfs -o size=4g tmpfs "$t" || die "extract: cannot mount a tmpfs (run as root)"
	log "extract: first run from an empty cache (PARKER_MODE=extract)"
	measure "$t/cache" env PARKER_MODE=extract PARKER_CACHE_DIR="$t/cache" "$WORK/x.out" version
	local pt=$M_TIME pr=$M_RSS
	log "extract: unsquashfs -d, then the same run from its copy"
	# shellcheck disable=SC2016 # expanded by that sh
	measure "$t/un" sh -c 'unsquashfs -q -n -o "$1" -d "$2" "$3" >/dev/null && "$2/run.sh" version' sh "$off" "$t/un" "$WORK/x.out"
	local ut=$M_TIME ur=$M_RSS
	umount "$t"
	EXTRACT_ROWS+=("$(printf '| copy of %s, zstd 3 | %.2f s | %.2f s | %.2f | %d MB | %d MB |' "$GO_TREE" "$pt" "$ut" \
		"$(awk -v a="$pt" -v b="$ut" 'BEGIN { print a / b }')" $((pr / 1024)) $((ur / 1024)))")
	rm -rf "$WORK/x.out" "$t"
}

# section_fuse: see the top.
section_fuse() {
	local f=$WORK/fuse off t
	command -v hyperfine >/dev/null || die "fuse: hyperfine missing: run hack/deps.sh"
	command -v squashfuse_ll >/dev/null || die "fuse: squashfuse_ll missing: run hack/deps.sh"
	[ "$(id -u)" -eq 0 ] || die "fuse: needs root (the kernel's rung, dropping the page cache)"
	log "fuse: copying $GO_TREE and packing it with a script that reads every file"
	rm -rf "$f"
	mkdir -p "$f/run" "$f/mnt"
	cp -a "$GO_TREE" "$f/tree"
	# Every file of the tree the script stands in, but the packed file
	# itself, which the overlay shows beside the packed ones.
	# shellcheck disable=SC2016 # expanded by the script
	printf '%s\n' '#!/bin/sh' \
		'cd "$(dirname "$0")" && find . -type f ! -name readalld -print0 | xargs -0 cat >/dev/null' >"$f/tree/readall"
	chmod +x "$f/tree/readall"
	"$PARKER" -q -C "$f/tree" -o "$f/run/readalld" readall
	off=$(json_field "$f/run/readalld" offset)
	write_sqfuse "$f/sqfuse.sh"
	# nobody reaches the files through WORK (mktemp makes it 0700).
	chmod 0755 "$WORK" "$f"
	fuse_open || die "fuse: cannot open /dev/fuse to users"
	t=$($AS_NOBODY "$f/run/readalld" 2>&1) || die "fuse: the FUSE rung cannot be taken here: $t"
	log "fuse: a cold full read, $FUSE_RUNS runs of each, side by side"
	hyperfine --show-output -r "$FUSE_RUNS" --prepare 'sync; echo 3 >/proc/sys/vm/drop_caches' --export-json "$WORK/fuse.json" \
		-n R0 "$f/run/readalld" \
		-n R1 "$AS_NOBODY $f/run/readalld" \
		-n squashfuse "$AS_NOBODY unshare -rm sh $f/sqfuse.sh $off $f/run/readalld $f/mnt readall" \
		-n direct "$f/tree/readall" >&2 || die "fuse: hyperfine failed"
	fuse_close
	t=$(nobody_left "squashfuse_ll .*$f") || die "fuse: squashfuse_ll left running after its umount: pids $t"
	t=$(nobody_left "^parker-fuse") || log "fuse: FUSE servers of nobody still running 10 s after the runs: pids $t"
	FUSE_ROWS+=("$(python3 - "$WORK/fuse.json" "$GO_TREE" <<'PY'
import json, sys
m = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
print("| copy of %s, zstd 3 | %.2f s | %.2f s | %.2f s | %.2f s | **%.2f** | %.2f |" % (
    sys.argv[2], m["R0"], m["R1"], m["squashfuse"], m["direct"], m["R1"] / m["R0"], m["squashfuse"] / m["R0"]))
PY
)")
	rm -rf "$f" "$WORK/fuse.json"
}

FUSE_ROWS=()
EXTRACT_ROWS=()
TREES=()
STUB_SIZE=
start=$(date +%s)
for s in $SECTIONS; do
	declare -F "section_$s" >/dev/null || die "unknown section $s"
	"section_$s"
done

echo "### Pack benchmark"
echo
echo "$(date -u +%Y-%m-%d), $NPROC cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), $("$PARKER" --version 2>&1 | head -n1), $(mksquashfs -version 2>&1 | head -n1); median of $RUNS runs, warm page cache. Size is the squashfs payload (parker: trailer size; mksquashfs: image file). RSS is the peak resident set (GNU time %M, largest run)."
echo
for t in "${TREES[@]}"; do echo "- $t"; done
[ ${#TREES[@]} -gt 0 ] && echo
if [ ${#ROWS[@]} -gt 0 ]; then
	echo "| tree | compression | parker time | mksquashfs time | parker size | mksquashfs size | size ratio | parker RSS | mksquashfs RSS |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
	echo
fi
if [ ${#EXTRACT_ROWS[@]} -gt 0 ]; then
	echo "Without root: a packed file's first run from an empty extraction cache (PARKER_MODE=extract: extract, digest, publish, run \`go version\`) against unsquashfs -d and the same run from its copy:"
	echo
	echo "| tree | parker first run | unsquashfs + run | ratio | parker RSS | unsquashfs RSS |"
	echo "|---|---:|---:|---:|---:|---:|"
	printf '%s\n' "${EXTRACT_ROWS[@]}"
	echo
fi
if [ ${#FUSE_ROWS[@]} -gt 0 ]; then
	echo "A cold full read (the page cache dropped before each run) of the packed Go tree by a script that reads every file, median of $FUSE_RUNS runs: the packed file as root (R0, the kernel's rung) and as nobody (R1, the FUSE rung), squashfuse_ll mounting the same payload the same way as nobody, and the plain directory:"
	echo
	echo "| tree | R0 (kernel, root) | R1 (FUSE, nobody) | squashfuse_ll (nobody) | direct | R1/R0 | squashfuse_ll/R0 |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${FUSE_ROWS[@]}"
	echo
fi
if [ -n "$STUB_SIZE" ]; then
	echo "Before the payload (bin/parker): stub $STUB_SIZE bytes ($(human "$STUB_SIZE")), helper $HELPER_SIZE bytes LZ4-packed ($HELPER_RAW unpacked); payload offset $STUB_OFFSET ($(human "$STUB_OFFSET"))."
fi
log "done in $(($(date +%s) - start)) s"
