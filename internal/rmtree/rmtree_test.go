package rmtree

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestChmodFD: both ways of changing a mode through an O_PATH descriptor
// change the directory it was opened on, unreadable as it is.
func TestChmodFD(t *testing.T) {
	for name, chmod := range map[string]func(int, uint32) error{"chmodFD": chmodFD, "chmodProc": chmodProc} {
		d := filepath.Join(t.TempDir(), "d")
		if err := os.Mkdir(d, 0); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = chmod(fd, 0o700)
		unix.Close(fd)
		if err == nil {
			var fi os.FileInfo
			if fi, err = os.Stat(d); err == nil && fi.Mode() != fs.ModeDir|0o700 {
				err = fmt.Errorf("mode %v", fi.Mode())
			}
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
