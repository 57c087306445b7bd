package mountns

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Thin wrappers, one per loop ioctl. Policy (retries, fallback) lives in
// AttachLoop below them.

// LoopControl is the control device that hands out free loop devices.
const LoopControl = "/dev/loop-control"

// GetFree asks the loop control device for a free loop device number,
// allocating a new device when none is free. The kernel breaks ioctl
// convention here: the device number is the ioctl's return value, not
// written through an argument pointer, hence IoctlRetInt.
func GetFree(ctl int) (int, error) {
	return unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
}

// Configure attaches backing to the loop device fd and sets offset, size
// limit and flags in one ioctl (LOOP_CONFIGURE, Linux 5.8+). Being atomic,
// it leaves no window in which the device exposes the whole backing file.
func Configure(fd, backing int, offset, size uint64, flags uint32) error {
	cfg := unix.LoopConfig{Fd: uint32(backing)}
	cfg.Info.Offset = offset
	cfg.Info.Sizelimit = size
	cfg.Info.Flags = flags
	return unix.IoctlLoopConfigure(fd, &cfg)
}

// SetFD attaches backing to the loop device fd (LOOP_SET_FD), the first half
// of the pre-5.8 two-step attach.
func SetFD(fd, backing int) error {
	return unix.IoctlSetInt(fd, unix.LOOP_SET_FD, backing)
}

// SetStatus sets offset, size limit and flags on an attached loop device
// (LOOP_SET_STATUS64), the second half of the pre-5.8 attach.
func SetStatus(fd int, offset, size uint64, flags uint32) error {
	info := unix.LoopInfo64{Offset: offset, Sizelimit: size, Flags: flags}
	return unix.IoctlLoopSetStatus64(fd, &info)
}

// ClearFD detaches the loop device fd from its backing file (LOOP_CLR_FD).
func ClearFD(fd int) error {
	return unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
}

// loopOps is the seam between AttachLoop's policy and the kernel; tests
// replace it with a fake.
type loopOps struct {
	openControl func() (int, error)
	getFree     func(ctl int) (int, error)
	openDevice  func(n int) (int, error)
	configure   func(fd, backing int, offset, size uint64, flags uint32) error
	setFD       func(fd, backing int) error
	setStatus   func(fd int, offset, size uint64, flags uint32) error
	clearFD     func(fd int) error
	close       func(fd int) error
}

var sysLoop = loopOps{
	openControl: func() (int, error) {
		return unix.Open(LoopControl, unix.O_RDWR|unix.O_CLOEXEC, 0)
	},
	getFree: GetFree,
	openDevice: func(n int) (int, error) {
		// Read-only: the device is read-only anyway, and an O_RDONLY open
		// is all the squashfs mount needs.
		return unix.Open("/dev/loop"+strconv.Itoa(n), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	},
	configure: Configure,
	setFD:     SetFD,
	setStatus: SetStatus,
	clearFD:   ClearFD,
	close:     unix.Close,
}

// loopAttempts bounds the free-device race: between LOOP_CTL_GET_FREE and
// attaching, another process may take the same device (EBUSY). Each retry
// asks for a fresh number, so the loop ends as soon as we win once.
const loopAttempts = 64

// Loop is an attached loop device. Its flags include LO_FLAGS_AUTOCLEAR:
// the kernel detaches it when the last user (our fd, then the mount) goes
// away, so a crash at any point leaves no device behind.
type Loop struct {
	Dev string // /dev/loopN
	fd  int
}

// AttachLoop attaches bytes [offset, offset+size) of backing as a read-only,
// auto-clearing loop device. It returns an error wrapping ErrDenied when the
// kernel refuses loop devices to this process (not root, no loop driver), so
// callers can fall back to extraction.
func AttachLoop(backing *os.File, offset, size uint64) (*Loop, error) {
	return attachLoop(sysLoop, int(backing.Fd()), offset, size)
}

func attachLoop(ops loopOps, backing int, offset, size uint64) (*Loop, error) {
	ctl, err := ops.openControl()
	if err != nil {
		return nil, denied("open "+LoopControl, err)
	}
	defer ops.close(ctl)
	flags := uint32(unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR)
	useConfigure := true
	var lastErr error
	for attempt := 0; attempt < loopAttempts; attempt++ {
		n, err := ops.getFree(ctl)
		if err != nil {
			return nil, denied("find a free loop device", err)
		}
		fd, err := ops.openDevice(n)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENXIO) {
				// The device node was removed (LOOP_CTL_REMOVE) or not
				// yet created by udev; ask again.
				lastErr = err
				continue
			}
			return nil, denied(fmt.Sprintf("open /dev/loop%d", n), err)
		}
		if useConfigure {
			err = ops.configure(fd, backing, offset, size, flags)
			if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
				// Kernel older than 5.8: no LOOP_CONFIGURE. Use the
				// two-step attach from now on.
				useConfigure = false
			}
		}
		if !useConfigure {
			err = ops.setFD(fd, backing)
			if err == nil {
				if err = ops.setStatus(fd, offset, size, flags); err != nil {
					// Never leave a device attached to the whole file.
					ops.clearFD(fd)
				}
			}
		}
		if err == nil {
			return &Loop{Dev: "/dev/loop" + strconv.Itoa(n), fd: fd}, nil
		}
		ops.close(fd)
		if errors.Is(err, unix.EBUSY) {
			// Lost the race for device n; the kernel will hand out
			// another. Back off a little when many of us race.
			lastErr = err
			if attempt > 8 {
				time.Sleep(time.Duration(attempt) * 100 * time.Microsecond)
			}
			continue
		}
		return nil, denied(fmt.Sprintf("attach /dev/loop%d", n), err)
	}
	return nil, fmt.Errorf("attach loop device: no free device after %d attempts: %w", loopAttempts, lastErr)
}

// Close drops our reference. With autoclear, the device stays bound while a
// mount uses it and detaches itself after the last unmount.
func (l *Loop) Close() error {
	if l.fd < 0 {
		return nil
	}
	err := sysLoop.close(l.fd)
	l.fd = -1
	return err
}
