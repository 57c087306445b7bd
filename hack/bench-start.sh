#!/usr/bin/env bash
# Start-up benchmark of packed files (issue 4), as a Markdown table.
#
# For a 1 MiB and a 2 GiB payload it times, with hyperfine (median of RUNS
# runs, after warm-up runs):
#   direct   the target run directly: a copy of /bin/true in the workdir;
#   packed   TARGETd, the same workdir packed by parker: private mount
#            namespace, loop device, squashfs, tmpfs and overlay, then the
#            target, supervised;
#   tar.gz   what the original Parker did on every start: extract the same
#            tree from a tar.gz into a fresh tmpfs directory, then run it.
# The payload is incompressible (random bytes), so its size is real.
#
# Usage: hack/bench-start.sh        (as root; make bench calls it)
# Environment: PARKER (default bin/parker, built when missing), RUNS (30),
#   TAR_RUNS_BIG (5: each 2 GiB extraction takes seconds), SIZES ("1M 2G"),
#   KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-30}
TAR_RUNS_BIG=${TAR_RUNS_BIG:-5}
SIZES=${SIZES:-"1M 2G"}
PARKER=${PARKER:-bin/parker}

die() { echo "bench-start: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (a packed file mounts its payload)"
command -v hyperfine >/dev/null || die "hyperfine not installed"
command -v python3 >/dev/null || die "python3 not installed (reads hyperfine's JSON)"
if [ ! -x "$PARKER" ]; then
	make -s build >&2
fi
PARKER=$(readlink -f "$PARKER")

# Work on disk (the packed file and the tar.gz live there, as they would on
# a user's machine); extract into tmpfs, as the original Parker did.
work=$(mktemp -d /var/tmp/parker-bench-start.XXXXXX)
shm=$(mktemp -d /dev/shm/parker-bench-start.XXXXXX)
cleanup() {
	rm -rf "$shm"
	if [ "${KEEP:-0}" = 1 ]; then echo "bench-start: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

median() { # hyperfine JSON file -> median wall time in ms
	python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"
}
cpu() { # hyperfine JSON file -> mean user+system CPU time in ms
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % ((r["user"]+r["system"])*1000))' "$1"
}

rows=()
for size in $SIZES; do
	wd=$work/wd-$size
	mkdir -p "$wd" "$work/out-$size"
	cp /bin/true "$wd/true"
	echo "bench-start: $size payload: generating" >&2
	head -c "$size" /dev/urandom >"$wd/asset.bin"
	echo "bench-start: $size payload: packing" >&2
	"$PARKER" -q -C "$wd" -o "$work/out-$size/trued" true
	payload=$("$work/out-$size/trued" --parker-info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
	tar -C "$wd" -cf - . | gzip -1 >"$work/tree-$size.tar.gz"

	echo "bench-start: $size payload: timing direct and packed ($RUNS runs each)" >&2
	hyperfine -N -w 5 -r "$RUNS" --export-json "$work/direct.json" "$wd/true" >/dev/null 2>&1
	hyperfine -N -w 5 -r "$RUNS" --export-json "$work/packed.json" "$work/out-$size/trued" >/dev/null 2>&1
	direct=$(median "$work/direct.json")
	packed=$(median "$work/packed.json")
	dcpu=$(cpu "$work/direct.json")
	pcpu=$(cpu "$work/packed.json")

	tr=$RUNS
	case $size in *G) tr=$TAR_RUNS_BIG ;; esac
	echo "bench-start: $size payload: timing tar.gz extraction to tmpfs ($tr runs)" >&2
	hyperfine -w 1 -r "$tr" --export-json "$work/tar.json" \
		--prepare "rm -rf $shm/x && mkdir $shm/x" \
		"tar -C $shm/x -xzf $work/tree-$size.tar.gz && $shm/x/true" >/dev/null 2>&1
	rm -rf "$shm/x"
	tarms=$(median "$work/tar.json")

	over=$(python3 -c "print('%.2f' % ($packed - $direct))")
	rows+=("| $size ($payload B) | $direct | $packed | **$over** | $dcpu / $pcpu | $tarms |")
	rm -rf "$wd" "$work/tree-$size.tar.gz" "$work/out-$size"
done

stub=$(stat -c %s "$PARKER")
echo
echo "Start-up of a \`true\`-like target in ms: wall time, median of $RUNS runs (tar.gz of 2 GiB: $TAR_RUNS_BIG);"
echo "CPU: mean user+system time, which a busy machine disturbs far less than wall time."
echo "$(nproc) cores, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; stub $stub bytes."
echo
echo "| payload | direct | packed (parker) | overhead | CPU direct / packed | tar.gz extract to tmpfs + run (original Parker) |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
