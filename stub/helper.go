package stub

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/pierrec/lz4/v4"
	"golang.org/x/sys/unix"
)

// EnvHelperFor tells the helper executable which packed file started it
// (the absolute path); the helper removes it from its environment.
const EnvHelperFor = "PARKER_HELPER_FOR"

// EnvSignals carries, from the C stub to the helper, the caller's blocked
// and ignored signals (supervisor.ParseSignalState), which the Go runtime
// changes before any of the helper's code runs; the helper gives them back
// to the target, and removes the variable.
const EnvSignals = "PARKER_SIGNALS"

// helper replaces this process with the helper executable that the packed
// file carries (see trailer.Trailer), passing it our arguments unchanged.
// The helper is copied into an anonymous memory file and executed from
// there: nothing is written to disk, and a noexec /tmp does not matter. It
// returns only on failure.
func (r *runner) helper(args []string) int {
	if r.t.HelperSize == 0 {
		return r.fail(errors.New("this packed file carries no helper to read its image with " +
			"(damaged, or not written by parker); parker inspect can still read it"))
	}
	// MFD_EXEC asks for an executable memory file where the default is
	// not (vm.memfd_noexec=1, Linux 6.3+); older kernels refuse the flag.
	fd, err := unix.MemfdCreate("parker-helper", unix.MFD_CLOEXEC|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("parker-helper", unix.MFD_CLOEXEC)
	}
	if err != nil {
		return r.fail(fmt.Errorf("start the helper: memfd_create: %w%s", err, noexecHint(err)))
	}
	if r.t.HelperRawSize != 0 {
		err = unpackLZ4(r.file, int64(r.t.HelperOffset), int64(r.t.HelperSize), int64(r.t.HelperRawSize), fd)
	} else {
		err = copyRange(r.file, int64(r.t.HelperOffset), int64(r.t.HelperSize), fd)
	}
	if err != nil {
		return r.fail(fmt.Errorf("start the helper: %w", err))
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvHelperFor+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, EnvHelperFor+"="+r.self)
	err = execveat(fd, args, env)
	if errors.Is(err, unix.ENOSYS) {
		err = syscall.Exec("/proc/self/fd/"+strconv.Itoa(fd), args, env)
	}
	if hint := noexecHint(err); hint != "" {
		return r.fail(fmt.Errorf("start the helper from memory: %w%s", err, hint))
	}
	return r.fail(fmt.Errorf("start the helper from memory: %w (file damaged?)", err))
}

// noexecHint explains a refusal to create or execute a memory file.
func noexecHint(err error) string {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return " (executing memory files is forbidden here: vm.memfd_noexec or a security policy)"
	}
	return ""
}

// copyRange copies size bytes at off in f to the file dst, at its current
// position: with sendfile, in the kernel, where it can.
func copyRange(f *os.File, off, size int64, dst int) error {
	src := int(f.Fd())
	for size > 0 {
		n, err := unix.Sendfile(dst, src, &off, int(min(size, 1<<30)))
		if err != nil || n == 0 {
			break // not supported here: copy by hand
		}
		size -= int64(n)
	}
	buf := make([]byte, 1<<20)
	for size > 0 {
		n, err := f.ReadAt(buf[:min(size, int64(len(buf)))], off)
		if n == 0 {
			return fmt.Errorf("read helper: %w", err)
		}
		for b := buf[:n]; len(b) > 0; {
			w, err := unix.Write(dst, b)
			if err != nil {
				return fmt.Errorf("write helper: %w", err)
			}
			b = b[w:]
		}
		off, size = off+int64(n), size-int64(n)
	}
	return nil
}

// unpackLZ4 unpacks the LZ4 block of size bytes at off in f, which must
// unpack to exactly raw bytes, into the empty file dst, through a shared
// mapping of it (no second copy in memory).
func unpackLZ4(f *os.File, off, size, raw int64, dst int) error {
	block := make([]byte, size)
	if _, err := f.ReadAt(block, off); err != nil {
		return fmt.Errorf("read helper: %w", err)
	}
	if err := unix.Ftruncate(dst, raw); err != nil {
		return fmt.Errorf("size helper: %w", err)
	}
	out, err := unix.Mmap(dst, 0, int(raw), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map helper: %w", err)
	}
	defer unix.Munmap(out)
	n, err := lz4.UncompressBlock(block, out)
	if err != nil || int64(n) != raw {
		return fmt.Errorf("unpack helper: %d of %d bytes (%v): file damaged", n, raw, err)
	}
	return nil
}

// execveat runs the executable open as fd (AT_EMPTY_PATH).
func execveat(fd int, argv, envv []string) error {
	empty, err := syscall.BytePtrFromString("")
	if err != nil {
		return err
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envvp, err := syscall.SlicePtrFromStrings(envv)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envvp[0])), unix.AT_EMPTY_PATH, 0)
	return e
}
