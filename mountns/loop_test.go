package mountns

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeLoop scripts the kernel's answers to AttachLoop's policy.
type fakeLoop struct {
	ctlErr     error
	free       []int   // numbers LOOP_CTL_GET_FREE hands out, in turn
	configure  []error // LOOP_CONFIGURE results, in turn (nil: success)
	setFD      []error
	setStatus  []error
	cleared    int
	open       map[int]bool // open descriptors
	nextFD     int
	configured bool // a LOOP_CONFIGURE call succeeded
}

func (f *fakeLoop) ops() loopOps {
	pop := func(l *[]error) error {
		if len(*l) == 0 {
			return nil
		}
		e := (*l)[0]
		*l = (*l)[1:]
		return e
	}
	newFD := func() int { f.nextFD++; f.open[f.nextFD] = true; return f.nextFD }
	return loopOps{
		openControl: func() (int, error) {
			if f.ctlErr != nil {
				return -1, f.ctlErr
			}
			return newFD(), nil
		},
		getFree: func(int) (int, error) {
			if len(f.free) == 0 {
				return -1, unix.ENOSPC
			}
			n := f.free[0]
			f.free = f.free[1:]
			return n, nil
		},
		openDevice: func(int) (int, error) { return newFD(), nil },
		configure: func(int, int, uint64, uint64, uint32) error {
			err := pop(&f.configure)
			f.configured = f.configured || err == nil
			return err
		},
		setFD:     func(int, int) error { return pop(&f.setFD) },
		setStatus: func(int, uint64, uint64, uint32) error { return pop(&f.setStatus) },
		clearFD:   func(int) error { f.cleared++; return nil },
		close:     func(fd int) error { delete(f.open, fd); return nil },
	}
}

func TestAttachLoopPolicy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		f          fakeLoop
		wantDev    string
		wantDenied bool
		wantErr    bool
		wantClear  int
		// twoStep: the device was attached with LOOP_SET_FD and
		// LOOP_SET_STATUS64, never with LOOP_CONFIGURE.
		twoStep bool
	}{
		{name: "configure", f: fakeLoop{free: []int{3}}, wantDev: "/dev/loop3"},
		{name: "race: EBUSY then another device",
			f:       fakeLoop{free: []int{3, 4}, configure: []error{unix.EBUSY}},
			wantDev: "/dev/loop4"},
		{name: "old kernel: two-step attach",
			f:       fakeLoop{free: []int{0}, configure: []error{unix.ENOTTY}},
			wantDev: "/dev/loop0", twoStep: true},
		// LOOP_CONFIGURE is not tried again on the second device: the
		// fake would let it succeed there.
		{name: "old kernel, race on LOOP_SET_FD",
			f:       fakeLoop{free: []int{0, 1}, configure: []error{unix.EINVAL}, setFD: []error{unix.EBUSY}},
			wantDev: "/dev/loop1", twoStep: true},
		{name: "status fails: device cleared, error",
			f:         fakeLoop{free: []int{0}, configure: []error{unix.ENOTTY}, setStatus: []error{unix.ENXIO}},
			wantErr:   true,
			wantClear: 1},
		{name: "no loop-control", f: fakeLoop{ctlErr: unix.ENOENT}, wantDenied: true},
		{name: "not root", f: fakeLoop{ctlErr: unix.EACCES}, wantDenied: true},
		{name: "attach denied", f: fakeLoop{free: []int{0}, configure: []error{unix.EPERM}}, wantDenied: true},
		{name: "always busy", f: fakeLoop{free: make([]int, loopAttempts+1), configure: busy(loopAttempts + 1)}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.open = map[int]bool{}
			l, err := attachLoop(tc.f.ops(), 100, 4096, 8192)
			switch {
			case tc.wantDenied:
				if !errors.Is(err, ErrDenied) {
					t.Fatalf("err = %v, want ErrDenied", err)
				}
			case tc.wantErr:
				if err == nil || errors.Is(err, ErrDenied) {
					t.Fatalf("err = %v, want a non-denied error", err)
				}
			default:
				if err != nil || l.Dev != tc.wantDev {
					t.Fatalf("got %v, %v; want %s", l, err, tc.wantDev)
				}
				if len(tc.f.open) != 1 || !tc.f.open[l.fd] {
					t.Errorf("open descriptors %v: want only the device's", tc.f.open)
				}
				if tc.f.configured == tc.twoStep {
					t.Errorf("attached with LOOP_CONFIGURE: %v, want %v", tc.f.configured, !tc.twoStep)
				}
			}
			if err != nil && len(tc.f.open) != 0 {
				t.Errorf("descriptors left open after an error: %v", tc.f.open)
			}
			if tc.f.cleared != tc.wantClear {
				t.Errorf("LOOP_CLR_FD called %d times, want %d", tc.f.cleared, tc.wantClear)
			}
		})
	}
}

func busy(n int) []error {
	e := make([]error, n)
	for i := range e {
		e[i] = unix.EBUSY
	}
	return e
}

func TestDenied(t *testing.T) {
	for _, e := range []error{unix.EPERM, unix.EACCES, unix.ENODEV, unix.ENOSYS} {
		if !errors.Is(denied("x", e), ErrDenied) {
			t.Errorf("%v: not ErrDenied", e)
		}
	}
	for _, e := range []error{unix.EINVAL, unix.EIO, unix.EBUSY} {
		if err := denied("x", e); errors.Is(err, ErrDenied) || !errors.Is(err, e) {
			t.Errorf("%v: got %v", e, err)
		}
	}
}

func TestEscapeLayer(t *testing.T) {
	if got, want := escapeLayer(`/a:b,c\d`), `/a\:b\,c\\d`; got != want {
		t.Errorf("escapeLayer = %q, want %q", got, want)
	}
}
