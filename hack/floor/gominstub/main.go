// Command gominstub is hack/floor/minstub.c in Go, for hack/bench-start.sh:
// the same system calls (private mount namespace, loop device, squashfs,
// tmpfs, overlay, exec of the target in place), nothing else: no
// supervision, no signal relay, no error messages. Set beside minstub.c
// and an empty Go program, it shows what doing that work from a Go process
// costs. Not part of parker.
package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	runtime.LockOSThread()
	self, err := os.Executable()
	check(err)
	f, err := os.Open(self)
	check(err)
	fi, err := f.Stat()
	check(err)
	var foot [16]byte
	_, err = f.ReadAt(foot[:], fi.Size()-16)
	check(err)
	blen := int64(binary.LittleEndian.Uint32(foot[:4]))
	body := make([]byte, blen)
	_, err = f.ReadAt(body, fi.Size()-16-blen)
	check(err)
	off, size := binary.LittleEndian.Uint64(body[12:]), binary.LittleEndian.Uint64(body[20:])
	tlen := int(binary.LittleEndian.Uint16(body[68:]))
	dir := filepath.Dir(self)
	target := dir + "/" + string(body[70:70+tlen])

	check(unix.Unshare(unix.CLONE_NEWNS))
	check(unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	check(err)
	n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
	check(err)
	dev := "/dev/loop" + strconv.Itoa(n)
	l, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	check(err)
	cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
	cfg.Info.Offset, cfg.Info.Sizelimit = off, size
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	check(unix.IoctlLoopConfigure(l, &cfg))
	sq := fsmount("squashfs", "source", dev, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	tmp := fsmount("tmpfs", "mode", "700", unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	unix.Close(l)
	f.Close()
	check(unix.Mkdirat(tmp, "upper", 0o755))
	check(unix.Mkdirat(tmp, "work", 0o700))
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	check(err)
	fd := func(n int) string { return "/proc/self/fd/" + strconv.Itoa(n) }
	check(unix.FsconfigSetString(fs, "lowerdir+", fd(sq)))
	check(unix.FsconfigSetString(fs, "lowerdir+", dir))
	check(unix.FsconfigSetString(fs, "upperdir", fd(tmp)+"/upper"))
	check(unix.FsconfigSetString(fs, "workdir", fd(tmp)+"/work"))
	check(unix.FsconfigCreate(fs))
	ov, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	check(err)
	check(unix.MoveMount(ov, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH))
	args := append([]string{filepath.Base(target)}, os.Args[1:]...)
	check(syscall.Exec(target, args, os.Environ()))
}

func fsmount(fstype, key, val string, attrs int) int {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	check(err)
	if fstype == "squashfs" {
		check(unix.FsconfigSetFlag(fs, "ro"))
	}
	check(unix.FsconfigSetString(fs, key, val))
	check(unix.FsconfigCreate(fs))
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attrs)
	check(err)
	return m
}

func check(err error) {
	if err != nil {
		os.Stderr.WriteString("gominstub: " + err.Error() + "\n")
		os.Exit(125)
	}
}
