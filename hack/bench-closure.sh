#!/usr/bin/env bash
# --closure benchmark, as Markdown tables (make bench calls it, as root):
#
#   sqlite   tests/testdata/run/sqlite.c linked against the host's
#            libsqlite3: started directly, packed, and packed with
#            --closure, side by side (hyperfine, median of RUNS); the
#            warm-up runs make the closure's entry in a cache directory of
#            the script's own, as a user's first run does;
#   python   a pyenv-built python (PYENV_PYTHON, default the newest
#            ~/.pyenv/versions/3.11.*): its prefix (bin/python3.11, its
#            libpython, its standard library without site-packages and
#            test) packed with and without --closure: pack time (median of
#            3), sizes, what the closure adds; then `-c pass` started
#            directly, packed, packed with --closure, side by side.
#            Skipped, saying why, where there is no such python.
#
# Environment: PARKER (default bin/parker), RUNS (100), PYENV_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-100}
PARKER=${PARKER:-bin/parker}
die() { echo "bench-closure: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (a packed file mounts its payload)"
command -v hyperfine >/dev/null || die "hyperfine not installed"
[ -x "$PARKER" ] || make -s build >&2
PARKER=$(readlink -f "$PARKER")
work=$(mktemp -d /var/tmp/parker-bench-closure.XXXXXX)
trap 'rm -rf "$work"' EXIT
export PARKER_CACHE_DIR=$work/cache
mkdir -p "$PARKER_CACHE_DIR"

# median FILE I: hyperfine's median of command I, in ms.
median() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"]*1000))' "$1" "$2"; }
# added LINE: what the closure added, from the pack's summary line.
added() { sed -n 's/.*(the closure: \(.*\))$/\1/p' <<<"$1"; }

echo "bench-closure: the SQLite program" >&2
mkdir -p "$work/sq" "$work/sq-plain" "$work/sq-closure"
gcc -O2 -o "$work/sq/sq" tests/testdata/run/sqlite.c -lsqlite3 || die "gcc -lsqlite3 failed (hack/deps.sh installs libsqlite3-dev)"
"$PARKER" -q -C "$work/sq" -o "$work/sq-plain/sqd" sq
line=$("$PARKER" -C "$work/sq" -o "$work/sq-closure/sqd" --closure sq 2>&1 | tail -1)
hyperfine -N -w 5 -r "$RUNS" --export-json "$work/sq.json" "$work/sq/sq" "$work/sq-plain/sqd" "$work/sq-closure/sqd" >/dev/null 2>&1 ||
	die "hyperfine failed"
d=$(median "$work/sq.json" 0) p=$(median "$work/sq.json" 1) c=$(median "$work/sq.json" 2)
echo
echo "--closure: start-up of a program linked against the host's libsqlite3 (ms, median of $RUNS, side by side; the closure: $(added "$line")):"
echo
echo "| direct | packed | packed --closure | --closure over packed |"
echo "|---:|---:|---:|---:|"
echo "| $d | $p | $c | **$(python3 -c "print('%.2f' % ($c - $p))")** |"

py=${PYENV_PYTHON:-}
if [ -z "$py" ]; then
	py=$(ls -d "$HOME"/.pyenv/versions/3.11.* 2>/dev/null | sort -V | tail -1 || true)
fi
if [ -z "$py" ] || [ ! -x "$py/bin/python3.11" ]; then
	echo "bench-closure: no pyenv python 3.11 (PYENV_PYTHON): no python rows" >&2
	exit 0
fi
echo "bench-closure: $py" >&2
wd=$work/py
mkdir -p "$wd/bin" "$wd/lib" "$work/py-plain" "$work/py-closure"
cp -a "$py/bin/python3.11" "$wd/bin/"
cp -a "$py"/lib/libpython3.11.so* "$wd/lib/"
cp -a "$py/lib/python3.11" "$wd/lib/"
rm -rf "$wd/lib/python3.11/site-packages" "$wd/lib/python3.11/test"
mkdir "$wd/lib/python3.11/site-packages"
files=$(find "$wd" -type f | wc -l) size=$(du -sm "$wd" | cut -f1)
hyperfine -N -w 1 -r 3 --export-json "$work/pypack.json" \
	"$PARKER -q -C $wd -o $work/py-plain/pythond bin/python3.11" \
	"$PARKER -q -C $wd -o $work/py-closure/pythond --closure bin/python3.11" >/dev/null 2>&1 || die "packing python failed"
line=$("$PARKER" -C "$wd" -o "$work/py-closure/pythond" --closure bin/python3.11 2>&1 | tail -1)
plain=$(stat -c %s "$work/py-plain/pythond") closure=$(stat -c %s "$work/py-closure/pythond")
hyperfine -N -w 5 -r "$((RUNS / 2))" --export-json "$work/py.json" "$wd/bin/python3.11 -c pass" \
	"$work/py-plain/pythond -c pass" "$work/py-closure/pythond -c pass" >/dev/null 2>&1 || die "hyperfine failed"
d=$(median "$work/py.json" 0) p=$(median "$work/py.json" 1) c=$(median "$work/py.json" 2)
echo
echo "--closure: $py ($files files, $size MiB without site-packages and test), packed (pack: median of 3, s; start-up of \`-c pass\`: ms, median of $((RUNS / 2)), side by side):"
echo
echo "| | pack time | packed file | start-up |"
echo "|---|---:|---:|---:|"
echo "| direct | | | $d |"
echo "| packed | $(python3 -c "print('%.2f' % ($(median "$work/pypack.json" 0)/1000))") | $((plain / 1048576)) MiB | $p |"
echo "| packed --closure (the closure: $(added "$line")) | $(python3 -c "print('%.2f' % ($(median "$work/pypack.json" 1)/1000))") | $((closure / 1048576)) MiB | $c |"
