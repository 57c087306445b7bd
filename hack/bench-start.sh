#!/usr/bin/env bash
# Start-up benchmark of packed files, as a Markdown table.
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
# For the first payload size it also times these, side by side in the same
# hyperfine run, to show where the overhead goes:
#   go-empty  an empty static Go program: what the Go runtime's start and
#             exit cost on this machine, paid by any Go stub;
#   minstub   hack/floor/minstub.c, a static C program doing only the
#             kernel's share of a run (namespace, loop device, squashfs,
#             tmpfs, overlay, exec of the target in place), spliced in front
#             of the same payload: the least any packer of this design costs;
#   gominstub hack/floor/gominstub, the same program in Go: what that work
#             costs done from a Go process, before any of parker's own;
#   go stub   the same workdir packed by a parker that embeds the Go stub
#             (STUB=go: what make builds without a C compiler);
#   cgroup    the packed file run through env(1) twice, PARKER_CGROUP=auto
#             (the default: a cgroup per run) and PARKER_CGROUP=none (none:
#             the sidecar kills by mount namespace): the difference is the
#             cgroup's share of a start;
#   cache hit the packed file with PARKER_MODE=extract and its payload
#             already in the extraction cache (the warm-up runs put it
#             there): as root through the helper, and as nobody (below)
#             the C stub's own hit, the copy under the overlay in a user
#             namespace, the run a user without root or FUSE gets;
#   limit     the packed file with --parker-pids 100000: a run with a limit
#             goes through the helper and joins its cgroup before the exec
#             (under PARKER_CGROUP_PARENT=/, so its cgroups go under the
#             root of each hierarchy);
#   nobody    as an ordinary user (uid 65534, hack/nobody.sh), with
#             /dev/fuse opened to users for the run and put back after:
#             the direct run, the packed file on its FUSE rung (R1: a user
#             namespace, FUSE served by the helper, the overlay), its
#             server started from the cache's copy of the helper (every
#             run after the first) and, with no cache directory for one,
#             unpacked into memory (as a first run is), and
#             squashfuse_ll mounting the same payload at its offset the
#             same way, in a user namespace (unshare -rm), then the target
#             from the mount, then umount; and that shell line without the
#             mount, to tell squashfuse's share from sh's and unshare's.
#             Skipped, saying why, where the FUSE rung cannot be taken.
#
# Usage: hack/bench-start.sh        (as root; make bench calls it)
# Environment: PARKER (default bin/parker, built when missing), RUNS (100),
#   TAR_RUNS_BIG (5: each 2 GiB extraction takes seconds), SIZES ("1M 2G"),
#   KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-100}
TAR_RUNS_BIG=${TAR_RUNS_BIG:-5}
SIZES=${SIZES:-"1M 2G"}
PARKER=${PARKER:-bin/parker}
# shellcheck source=hack/nobody.sh
. hack/nobody.sh

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
# The rows as nobody reach their files through it: 0755, not mktemp's 0700.
work=$(mktemp -d /var/tmp/parker-bench-start.XXXXXX)
chmod 0755 "$work"
shm=$(mktemp -d /dev/shm/parker-bench-start.XXXXXX)
cleanup() {
	fuse_close
	sqfuse_end "$work"
	rm -rf "$shm"
	if [ "${KEEP:-0}" = 1 ]; then echo "bench-start: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

median() { # hyperfine JSON file [index] -> median wall time in ms
	python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"]*1000))' "$1" "${2:-0}"
}
cpu() { # hyperfine JSON file [index] -> mean user+system CPU time in ms
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]; print("%.1f" % ((r["user"]+r["system"])*1000))' "$1" "${2:-0}"
}

# The references (see above); either is skipped when it cannot be built.
goempty='' minstub=''
mkdir -p "$work/goempty"
printf 'module goempty\n\ngo 1.21\n' >"$work/goempty/go.mod"
printf 'package main\n\nfunc main() {}\n' >"$work/goempty/main.go"
if (cd "$work/goempty" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o ../go-empty .) 2>/dev/null; then
	goempty=$work/go-empty
fi
if gcc -O2 -static -o "$work/minstub" hack/floor/minstub.c 2>/dev/null; then
	minstub=$work/minstub
fi
gominstub=
if CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/gominstub" ./hack/floor/gominstub 2>/dev/null; then
	gominstub=$work/gominstub
fi
gostub=
if STUB=go bash hack/build.sh "$work/parker-gostub" >/dev/null 2>&1; then
	gostub=$work/parker-gostub
fi
# The rows as nobody need squashfuse_ll for the reference; whether the
# FUSE rung itself can be taken is tried on the first payload.
nobody=1
if ! command -v squashfuse_ll >/dev/null; then
	echo "bench-start: squashfuse_ll not installed (hack/deps.sh installs it): no rows as nobody" >&2
	nobody=
fi
write_sqfuse "$work/sqfuse.sh"
# The same shell line without the mount: sh FILE DIR PROGRAM.
# shellcheck disable=SC2016 # expanded by that sh
printf '%s\n' 'dir=$1 prog=$2' 'shift 2' '"$dir/$prog" "$@"' >"$work/nomount.sh"
mkdir -p "$work/mnt"
floor_rows=()
nobody_rows=()
first=1

rows=()
for size in $SIZES; do
	wd=$work/wd-$size
	mkdir -p "$wd" "$work/out-$size"
	cp /bin/true "$wd/true"
	echo "bench-start: $size payload: generating" >&2
	head -c "$size" /dev/urandom >"$wd/asset.bin"
	echo "bench-start: $size payload: packing" >&2
	"$PARKER" -q -C "$wd" -o "$work/out-$size/trued" true
	[ $first = 1 ] && cp "$work/out-$size/trued" "$work/parts"
	payload=$("$work/out-$size/trued" --parker-info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
	tar -C "$wd" -cf - . | gzip -1 >"$work/tree-$size.tar.gz"

	cmds=("$wd/true" "$work/out-$size/trued")
	if [ $first = 1 ] && [ -n "$gostub" ]; then
		mkdir -p "$work/gostub"
		"$gostub" -q -C "$wd" -o "$work/gostub/trued" true
		cmds+=("$work/gostub/trued")
	fi
	if [ $first = 1 ]; then
		# The reference stubs in front of the same payload and trailer.
		for st in "$minstub" "$gominstub"; do
			[ -n "$st" ] || continue
			mkdir -p "$work/ref-$(basename "$st")"
			python3 - "$st" "$work/out-$size/trued" "$work/ref-$(basename "$st")/trued" <<'PY'
import struct, sys
stub, src = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
blen = struct.unpack("<I", src[-16:-12])[0]
body = bytearray(src[-16 - blen:-16])
off, size = struct.unpack("<QQ", body[12:28])
new = (len(stub) + 4095) // 4096 * 4096
body[12:20] = struct.pack("<Q", new)  # the reference stubs ignore the checksum
open(sys.argv[3], "wb").write(stub + bytes(new - len(stub)) + src[off:off + size] + bytes(body) + src[-16:])
PY
			chmod +x "$work/ref-$(basename "$st")/trued"
			cmds+=("$work/ref-$(basename "$st")/trued")
		done
	fi
	if [ $first = 1 ] && [ -n "$goempty" ]; then
		cmds+=("$goempty")
	fi
	if [ $first = 1 ]; then
		cmds+=("env PARKER_CGROUP=auto $work/out-$size/trued" "env PARKER_CGROUP=none $work/out-$size/trued"
			"env PARKER_CGROUP_PARENT=/ $work/out-$size/trued --parker-pids 100000"
			"env PARKER_MODE=extract PARKER_CACHE_DIR=$work/cache $work/out-$size/trued")
	fi
	if [ $first = 1 ] && [ -n "$nobody" ]; then
		off=$("$work/out-$size/trued" --parker-offset)
		fuse_open || die "cannot open /dev/fuse to users"
		if ! why=$($AS_NOBODY "$work/out-$size/trued" 2>&1); then
			echo "bench-start: the FUSE rung cannot be taken here, no rows as nobody: $why" >&2
			nobody=
		elif ! why=$($AS_NOBODY unshare -rm sh "$work/sqfuse.sh" "$off" "$work/out-$size/trued" "$work/mnt" true 2>&1); then
			echo "bench-start: squashfuse_ll cannot mount in a user namespace here, no rows as nobody: $why" >&2
			nobody=
		else
			# The cache's copy, found by the C stub (the warm-up runs
			# extract it), under the overlay in a user namespace.
			mkdir -p "$work/nbcache" && chown "$NOBODY_UID" "$work/nbcache" && chmod 0700 "$work/nbcache"
			# R1 twice: the helper (the FUSE server) started from the
			# cache's copy, which the first warm-up run's server
			# writes; and with no cache directory for a copy
			# (HOME and TMPDIR nowhere), as on a first run, unpacked.
			cmds+=("$AS_NOBODY $wd/true" "$AS_NOBODY PARKER_CACHE_DIR=$work/nbcache $work/out-$size/trued"
				"$AS_NOBODY HOME=/nonexistent TMPDIR=/nonexistent $work/out-$size/trued"
				"$AS_NOBODY unshare -rm sh $work/sqfuse.sh $off $work/out-$size/trued $work/mnt true"
				"$AS_NOBODY unshare -rm sh $work/nomount.sh $wd true"
				"$AS_NOBODY PARKER_MODE=extract PARKER_CACHE_DIR=$work/nbcache $work/out-$size/trued")
		fi
		[ -n "$nobody" ] || fuse_close
	fi
	echo "bench-start: $size payload: timing ${#cmds[@]} commands side by side ($RUNS runs each)" >&2
	hyperfine -N -w 5 -r "$RUNS" --export-json "$work/start.json" "${cmds[@]}" >/dev/null 2>"$work/hyperfine.err" ||
		die "hyperfine failed: $(tail -n 3 "$work/hyperfine.err")"
	if [ $first = 1 ] && [ -n "$nobody" ]; then
		fuse_close
		left=$(nobody_left "squashfuse_ll .*$work") || die "squashfuse_ll left running after its umount: pids $left"
		left=$(nobody_left "^parker-fuse") || echo "bench-start: FUSE servers of nobody still running 10 s after the runs: pids $left" >&2
		ls "$work"/nbcache/helper-* >/dev/null 2>&1 || die "no copy of the helper in $work/nbcache: the R1 row did not run from one"
	fi
	direct=$(median "$work/start.json" 0)
	packed=$(median "$work/start.json" 1)
	dcpu=$(cpu "$work/start.json" 0)
	pcpu=$(cpu "$work/start.json" 1)
	if [ $first = 1 ]; then
		i=2
		over() { python3 -c "print('%.2f' % ($1 - $direct))"; }
		gorow=
		if [ -n "$gostub" ]; then
			m=$(median "$work/start.json" $i)
			gorow="| parker's packed file with the Go stub (STUB=go) | $m | $(over "$m") |"
			i=$((i + 1))
		fi
		if [ -n "$minstub" ]; then
			m=$(median "$work/start.json" $i)
			floor_rows+=("| minimal C stub (hack/floor/minstub.c): the kernel's share, exec in place | $m | $(over "$m") |")
			i=$((i + 1))
		fi
		if [ -n "$gominstub" ]; then
			m=$(median "$work/start.json" $i)
			floor_rows+=("| the same minimal stub in Go (hack/floor/gominstub) | $m | $(over "$m") |")
			i=$((i + 1))
		fi
		if [ -n "$goempty" ]; then
			g=$(median "$work/start.json" $i)
			floor_rows+=("| empty static Go program: the Go runtime's start and exit alone | $g | $(over "$g") |")
			i=$((i + 1))
		fi
		[ -z "$gorow" ] || floor_rows+=("$gorow")
		floor_rows+=("| parker's packed file (the C stub) | $packed | $(over "$packed") |")
		withcg=$(median "$work/start.json" $i)
		nocg=$(median "$work/start.json" $((i + 1)))
		limit=$(median "$work/start.json" $((i + 2)))
		hit=$(median "$work/start.json" $((i + 3)))
		floor_rows+=("| the same through env(1), PARKER_CGROUP=auto: a cgroup per run (the default) | $withcg | $(over "$withcg") |")
		floor_rows+=("| the same through env(1), PARKER_CGROUP=none: no cgroup, the sidecar kills by mount namespace | $nocg | $(over "$nocg") |")
		floor_rows+=("| **the cgroup's share** (the difference of the two rows above) | $(python3 -c "print('%.2f' % ($withcg - $nocg))") | |")
		floor_rows+=("| with a limit (--parker-pids 100000): through the helper, joining the cgroup before the exec | $limit | $(over "$limit") |")
		floor_rows+=("| through env(1), PARKER_MODE=extract, a cache hit as root: through the helper (it mounts the copy under the overlay) | $hit | $(over "$hit") |")
		if [ -n "$nobody" ]; then
			ndirect_root=$direct
			ndirect=$(median "$work/start.json" $((i + 4)))
			r1=$(median "$work/start.json" $((i + 5)))
			r1mem=$(median "$work/start.json" $((i + 6)))
			sqf=$(median "$work/start.json" $((i + 7)))
			nomount=$(median "$work/start.json" $((i + 8)))
			nbhit=$(median "$work/start.json" $((i + 9)))
			nover() { python3 -c "print('%.2f' % ($1 - $ndirect))"; }
			nobody_rows+=("| direct as nobody (setpriv, env PARKER_MODE=fuse, the target) | $ndirect | |")
			nobody_rows+=("| parker's packed file as nobody: the FUSE rung (R1), the server from the cache's copy of the helper | $r1 | **$(nover "$r1")** |")
			nobody_rows+=("| the same with no cache directory for a copy (HOME and TMPDIR nowhere; as a first run): the helper unpacked into memory | $r1mem | $(nover "$r1mem") |")
			nobody_rows+=("| squashfuse_ll -o offset= of the same payload in unshare -rm, the target from its mount, umount | $sqf | $(nover "$sqf") |")
			nobody_rows+=("| the same shell line without squashfuse_ll and umount (unshare -rm, sh, the target) | $nomount | $(nover "$nomount") |")
			nobody_rows+=("| **squashfuse_ll's share** (the difference of the two rows above) | $(python3 -c "print('%.2f' % ($sqf - $nomount))") | |")
			nobody_rows+=("| parker's packed file as nobody, PARKER_MODE=extract: a cache hit, the C stub's (the copy under the overlay, in a user namespace) | $nbhit | **$(nover "$nbhit")** |")
		fi
		first=0
	fi

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

parts=$("$PARKER" inspect --json "$work/parts" 2>/dev/null | python3 -c 'import json,sys; j=json.load(sys.stdin); print("stub %d bytes, helper %d bytes" % (j["stub_size"], j["helper_size"]))' || echo "stub and helper sizes unknown")
echo
echo "Start-up of a \`true\`-like target in ms: wall time, median of $RUNS runs (tar.gz of 2 GiB: $TAR_RUNS_BIG);"
echo "CPU: mean user+system time, which a busy machine disturbs far less than wall time."
echo "$(nproc) cores, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $parts."
echo
echo "| payload | direct | packed (parker) | overhead | CPU direct / packed | tar.gz extract to tmpfs + run (original Parker) |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
if [ ${#floor_rows[@]} -gt 1 ]; then
	echo
	echo "Where the overhead goes (first payload, same hyperfine run, ms):"
	echo
	echo "| program | median | over direct |"
	echo "|---|---:|---:|"
	printf '%s\n' "${floor_rows[@]}"
fi
if [ ${#nobody_rows[@]} -gt 0 ]; then
	echo
	echo "As an ordinary user, uid $NOBODY_UID, /dev/fuse open to it (first payload, same hyperfine run, ms; direct as root: $ndirect_root):"
	echo
	echo "| program | median | over direct as nobody |"
	echo "|---|---:|---:|"
	printf '%s\n' "${nobody_rows[@]}"
fi
