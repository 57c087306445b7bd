package stub

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/parkerpack/parker/image/trailer"
)

// Start runs the packed file at self, the absolute path of this program's
// own executable, with args (os.Args), and returns the exit status: the
// main of the run-time stub and of the helper.
func Start(self string, args []string) int {
	f, t, err := OpenSelf(self)
	if err != nil {
		if errors.Is(err, trailer.ErrNoTrailer) {
			err = trailer.ErrCutShort // this program is a stub
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return Fail(self, err)
	}
	defer f.Close()
	return Main(self, f, t, args)
}

// Executable returns the absolute path of the running program. Without
// /proc (some minimal containers), it falls back to argv[0].
func Executable() (string, error) {
	if p, err := os.Executable(); err == nil {
		return p, nil
	}
	arg0 := os.Args[0]
	if !strings.Contains(arg0, "/") {
		p, err := exec.LookPath(arg0)
		if err != nil {
			return "", err
		}
		arg0 = p
	}
	return arg0, nil
}

// OpenSelf reads the trailer of the file at path: trailer.ErrNoTrailer for
// plain parker, a trailer for a packed file, any other error when the file
// cannot be read or its trailer is damaged.
func OpenSelf(path string) (*os.File, *trailer.Trailer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	t, err := trailer.Read(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	// Kept open: the stub mounts its payload through this descriptor.
	return f, t, nil
}
