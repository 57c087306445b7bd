# shellcheck shell=bash
# hack/nobody.sh: sourced by hack/bench.sh and hack/bench-start.sh (as root)
# for their rows run as an ordinary user, uid 65534 (nobody): the FUSE rung
# (R1) of a packed file, and squashfuse_ll mounting the same payload the
# same way, in a user namespace, as the reference.
#
# Such rows need /dev/fuse open to the user: fuse_open opens it for them
# and fuse_close (which the caller's EXIT trap must call) puts its mode
# back. Tests that depend on its mode (tests/run_fuse_test.go,
# run_extract_test.go) must not run meanwhile.

# AS_NOBODY: the prefix of a command run as nobody. PARKER_MODE=fuse makes
# a packed file take the FUSE rung or fail (125), never fall back to the
# extraction cache unseen; the other rows as nobody pay the same env(1).
NOBODY_UID=65534
# shellcheck disable=SC2034 # used by the scripts that source this one
AS_NOBODY="setpriv --reuid $NOBODY_UID --regid $NOBODY_UID --clear-groups env PARKER_MODE=fuse"

fuse_mode=

# fuse_open opens /dev/fuse to every user (0666, as most distributions ship
# it) if it is not, and remembers its mode for fuse_close.
fuse_open() {
	local m
	m=$(stat -c %a /dev/fuse) || return 1
	if (((8#$m & 8#006) == 8#006)); then
		return 0
	fi
	fuse_mode=$m
	chmod 0666 /dev/fuse
}

# fuse_close puts back the mode fuse_open changed, if it did.
fuse_close() {
	if [ -n "$fuse_mode" ]; then
		chmod "$fuse_mode" /dev/fuse && fuse_mode=
	fi
}

# write_sqfuse FILE: the squashfuse_ll reference as a script, run by sh in
# a user namespace of its own (unshare -rm) as a packed file's FUSE rung
# runs: sh FILE OFFSET IMAGE MOUNTPOINT PROGRAM [ARGS...] mounts IMAGE's
# squashfs at OFFSET on MOUNTPOINT (squashfuse_ll returns once the mount is
# served, its server left running as a daemon), runs MOUNTPOINT/PROGRAM,
# then unmounts, which ends the server, and exits with PROGRAM's status.
write_sqfuse() {
	cat >"$1" <<'EOF'
off=$1 img=$2 mnt=$3 prog=$4
shift 4
squashfuse_ll -o offset="$off" "$img" "$mnt" || exit 125
"$mnt/$prog" "$@"
s=$?
umount "$mnt" || exit 125
exit $s
EOF
}

# nobody_left PATTERN: waits up to 10 s for the processes of nobody whose
# command line matches PATTERN (pgrep -f) to end; then prints the pids of
# those left, if any, and fails.
nobody_left() {
	local i left
	for ((i = 0; i < 100; i++)); do
		left=$(pgrep -u "$NOBODY_UID" -f "$1" | tr '\n' ' ') || true
		[ -n "$left" ] || return 0
		sleep 0.1
	done
	echo "$left"
	return 1
}

# sqfuse_end DIR: ends, by their pids, the squashfuse_ll of nobody serving
# a mount under DIR: one left by an interrupted run (the umount never ran)
# keeps its mount namespace alive.
sqfuse_end() {
	local p
	for p in $(pgrep -u "$NOBODY_UID" -f "squashfuse_ll .*$1" || true); do
		kill "$p" 2>/dev/null || true
	done
}
