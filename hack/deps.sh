#!/usr/bin/env bash
# Installs what the tests and benchmarks need, only when it is missing:
# squashfs-tools (unsquashfs and mksquashfs, the reference oracles), gcc (the
# C example of the end-to-end tests, and the C stub), the arm64 cross gcc and
# qemu-user-static (the arm64 C stub is built and its parsers run by the
# tests), Debian's python3.11 (the python example), GNU time (peak RSS in
# make bench), hyperfine (start-up times in make bench), squashfuse
# (squashfuse_ll: make bench's reference for the FUSE rung), setpriv, capsh (a
# run as root without CAP_SYS_ADMIN, as in a container), curl and strace
# (it stretches a step of a run in a signal test), libsqlite3-dev (the
# --closure tests link a program against the host's libsqlite3), musl-tools
# (musl-gcc: the --closure tests carry a musl program). Needs root for
# apt-get; without root it only says what is missing.
set -euo pipefail
need=()
command -v unsquashfs >/dev/null && command -v mksquashfs >/dev/null || need+=(squashfs-tools)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v python3 >/dev/null || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
command -v setpriv >/dev/null || need+=(util-linux)
command -v capsh >/dev/null || need+=(libcap2-bin)
command -v curl >/dev/null || need+=(curl)
command -v strace >/dev/null || need+=(strace)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v squashfuse_ll >/dev/null || need+=(squashfuse)
[ -x /usr/bin/python3.11 ] || need+=(python3.11)
[ -e /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
command -v musl-gcc >/dev/null || need+=(musl-tools)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
	echo "hack/deps.sh: missing ${need[*]}; install them as root (apt-get install -y ${need[*]})" >&2
	exit 0
fi
echo "hack/deps.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
