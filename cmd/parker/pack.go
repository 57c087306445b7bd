package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/walk"
	"github.com/parkerpack/parker/stub"
)

// stubSource names the executable whose bytes become the stub: parker
// itself. Tests point it at a small file.
var stubSource = stub.Executable

// testHookFinish, when set, runs just before the image is written (tests
// use it to make the writer fail half-way).
var testHookFinish func()

// tmpInfix marks parker's temp files: .NAME.parker-tmp-RANDOM beside the
// output. Leftovers of a killed run in the working directory are not packed.
const tmpInfix = ".parker-tmp-"

// pack runs `parker TARGET` and returns the exit status.
func pack(c *config, stderr io.Writer) int {
	u := newUI(stderr, c.quiet, c.verbose)
	j := &job{ui: u}
	stop := j.catchSignals()
	defer stop()
	if err := j.run(c); err != nil {
		j.abort()
		u.stopProgress()
		u.printf("parker: %v", err)
		return exitFail
	}
	return exitOK
}

// job is one pack: it owns the temp file until it is renamed into place.
type job struct {
	ui *ui

	mu        sync.Mutex
	tmp       *os.File
	tmpPath   string
	committed bool
}

// catchSignals removes the temp file on SIGINT, SIGTERM or SIGHUP, so an
// interrupted pack leaves nothing behind, and exits 1. It returns the
// function that stops catching.
func (j *job) catchSignals() func() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			if j.abort() {
				j.ui.final("parker: interrupted (%v)", sig)
			} else {
				j.ui.final("parker: interrupted (%v); nothing written", sig)
			}
			os.Exit(exitFail)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// abort removes the temp file unless it has already become the output,
// and reports whether it had.
func (j *job) abort() (committed bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.tmp != nil && !j.committed {
		j.tmp.Close()
		os.Remove(j.tmpPath)
		j.tmp = nil
	}
	return j.committed
}

func (j *job) run(c *config) error {
	u := j.ui
	start := time.Now()

	// Everything that can be checked before writing a byte.
	root, err := walk.Root(c.dir)
	if err != nil {
		return err
	}
	t, err := walk.ResolveTarget(root, c.dir, c.target)
	if err != nil {
		return err
	}
	if !t.Executable() {
		u.notice(fmt.Sprintf("target %s is not executable (mode %04o); the packed file will not be able to run it",
			c.target, t.Mode&0o7777))
	}
	rules, err := walk.LoadRules(root, c.excludes)
	if err != nil {
		return err
	}
	if err := rules.CheckTarget(t); err != nil {
		return err
	}
	out, err := outputPath(c.output)
	if err != nil {
		return err
	}
	var outSt unix.Stat_t
	outExists := false
	switch err := unix.Lstat(out, &outSt); {
	case err == nil:
		outExists = true
		if outSt.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("output %s is a directory", c.output)
		}
		if outSt.Dev == t.Dev && outSt.Ino == t.Ino {
			return fmt.Errorf("output %s would replace the target %s; choose another -o", c.output, c.target)
		}
	case !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("output %s: %w", c.output, err)
	}

	stubs, err := stubExecutables()
	if err != nil {
		return err
	}
	defer stubs.close()
	for _, msg := range stubWarnings(stubs.stub, stubs.stubSize) {
		u.notice(msg)
	}

	// The temp file lives beside the output, so the final rename is atomic.
	outDir, outName := filepath.Dir(out), filepath.Base(out)
	// Created under the lock, so a signal's abort either runs before the
	// file exists or sees it and removes it.
	j.mu.Lock()
	tmp, err := os.CreateTemp(outDir, "."+outName+tmpInfix+"*")
	if err == nil {
		j.tmp, j.tmpPath = tmp, tmp.Name()
	}
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write %s: %w", c.output, errnoOf(err))
	}
	var tmpSt unix.Stat_t
	if err := unix.Fstat(int(tmp.Fd()), &tmpSt); err != nil {
		return fmt.Errorf("write %s: %w", c.output, err)
	}

	// 1. The stub, and the helper when there is one.
	stage := time.Now()
	if _, err := io.Copy(tmp, io.NewSectionReader(stubs.stub, 0, stubs.stubSize)); err != nil {
		return j.writeErr(c.output, fmt.Errorf("copy stub: %w", err))
	}
	helperOffset := alignUp(stubs.stubSize)
	offset := helperOffset
	if stubs.helperSize > 0 {
		if _, err := tmp.Seek(helperOffset, io.SeekStart); err != nil {
			return j.writeErr(c.output, err)
		}
		if _, err := io.Copy(tmp, io.NewSectionReader(stubs.helper, 0, stubs.helperSize)); err != nil {
			return j.writeErr(c.output, fmt.Errorf("copy helper: %w", err))
		}
		offset = alignUp(helperOffset + stubs.helperSize)
		u.stage("stub", stage, fmt.Sprintf("%s, helper %s, payload at offset %d",
			humanBytes(stubs.stubSize), humanBytes(stubs.helperSize), offset))
	} else {
		helperOffset = 0
		u.stage("stub", stage, fmt.Sprintf("%s, payload at offset %d", humanBytes(stubs.stubSize), offset))
	}

	// 2. Walk the working directory straight into the writer.
	stage = time.Now()
	opt := c.opt
	opt.Progress = u.progress
	w, err := image.NewWriter(tmp, offset, opt)
	if err != nil {
		return err
	}
	outRel := ""
	if r, err := filepath.Rel(root, outDir); err == nil && r != ".." && !strings.HasPrefix(r, "../") {
		outRel = filepath.ToSlash(r)
	}
	u.startScan()
	n, err := walk.Tree(walk.Config{
		Root:    root,
		Display: c.dir,
		Rules:   rules,
		Target:  t,
		Add:     w.Add,
		Warn:    u.warn,
		Scanned: u.scanned,
		Skip: func(rel string, dev, ino uint64) bool {
			// parker's own output never goes into the image: this run's
			// temp file, the output being replaced, stale temp files.
			if dev == tmpSt.Dev && ino == tmpSt.Ino {
				return true
			}
			if outExists && dev == outSt.Dev && ino == outSt.Ino {
				u.warn(fmt.Sprintf("%s is the output; left out", filepath.Join(c.dir, rel)))
				return true
			}
			if outRel != "" {
				dir, base := splitRel(rel)
				if dir == outRel && strings.HasPrefix(base, "."+outName+tmpInfix) {
					u.warn(fmt.Sprintf("%s is a leftover temp file; left out", filepath.Join(c.dir, rel)))
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		return err
	}
	u.stage("walk", stage, fmt.Sprintf("%d entries, %d files, %s", n.Entries, n.Files, humanBytes(n.Bytes)))

	// 3. Compress and write the image.
	stage = time.Now()
	u.startProgress(n.Files, n.Bytes)
	if testHookFinish != nil {
		testHookFinish()
	}
	st, err := w.Finish()
	u.stopProgress()
	if err != nil {
		return j.writeErr(c.output, err)
	}
	u.stage("image", stage, fmt.Sprintf("%s, %d inodes, %d duplicates, %d fragment blocks",
		humanBytes(st.Size), st.Inodes, st.Duplicates, st.Fragments))

	// 4. Digest the payload as written, reading it back.
	stage = time.Now()
	h := sha256.New()
	// Large reads: this pass covers the whole payload, and 32 KiB reads
	// cost a tenth of its time in syscalls.
	if _, err := io.CopyBuffer(h, io.NewSectionReader(tmp, offset, st.Size), make([]byte, 1<<20)); err != nil {
		return j.writeErr(c.output, fmt.Errorf("read back payload: %w", err))
	}
	tr := trailer.Trailer{
		StubSize:      uint64(stubs.stubSize),
		HelperOffset:  uint64(helperOffset),
		HelperSize:    uint64(stubs.helperSize),
		HelperRawSize: uint64(stubs.helperRawSize),
		Offset:        uint64(offset),
		Size:          uint64(st.Size),
		Target:        t.Path,
		Compression:   opt.Compression,
		Level:         int32(opt.Level),
		BlockSize:     uint32(opt.BlockSize),
		CreatedBy:     "parker " + parkerVersion(),
	}
	copy(tr.Digest[:], h.Sum(nil))
	if opt.KeepOwner {
		tr.Flags |= trailer.KeepOwner
	}
	u.stage("digest", stage, "sha256:"+hex.EncodeToString(tr.Digest[:]))

	// 5. Trailer, exact length, mode, rename. No fsync, as with a compiler's
	// output: the rename already makes the file appear whole or not at all
	// to every other process, and syncing cost 15% of a 1 GiB pack. Write
	// errors of file systems that report them late (NFS) surface at Close.
	stage = time.Now()
	b, err := tr.MarshalBinary()
	if err != nil {
		return err
	}
	end := offset + st.Size
	if _, err := tmp.WriteAt(b, end); err != nil {
		return j.writeErr(c.output, err)
	}
	if err := tmp.Truncate(end + int64(len(b))); err != nil {
		return j.writeErr(c.output, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		return j.writeErr(c.output, err)
	}
	if err := j.commit(out); err != nil {
		return j.writeErr(c.output, err)
	}
	u.stage("commit", stage, fmt.Sprintf("%s, %s", c.output, humanBytes(end+int64(len(b)))))

	if !c.quiet {
		if u.warnings > 0 && !c.verbose {
			u.printf("parker: %d warning(s); run with -v to see them", u.warnings)
		}
		u.printf("%s", summary(c.output, st, opt, time.Since(start), tr.Digest))
	}
	return nil
}

// commit renames the temp file over the output, unless a signal got there
// first.
func (j *job) commit(out string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.tmp == nil {
		return errors.New("interrupted")
	}
	if err := j.tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(j.tmpPath, out); err != nil {
		return err
	}
	j.committed = true
	return nil
}

// writeErr words a failure to write the output in terms of the output's
// name, not the temp file's: "write pythond: no space left on device".
func (j *job) writeErr(output string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == j.tmpPath {
		return fmt.Errorf("write %s: %w", output, pe.Err)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return fmt.Errorf("write %s: %w", output, le.Err)
	}
	if j.tmpPath != "" && strings.Contains(err.Error(), j.tmpPath) {
		return fmt.Errorf("write %s: %s", output, strings.ReplaceAll(err.Error(), j.tmpPath, output))
	}
	return err
}

// summary is the one line printed after a pack:
//
//	pythond: 1234 files, 270.1 MiB -> 61.3 MiB (22.7%), zstd-3, 3.2s, sha256:...
func summary(output string, st image.Stats, opt image.Options, d time.Duration, digest [32]byte) string {
	ratio := 0.0
	if st.InputBytes > 0 {
		ratio = float64(st.Size) / float64(st.InputBytes) * 100
	}
	comp := opt.Compression
	if _, lo, hi := image.DefaultLevel(comp); lo != hi {
		comp = fmt.Sprintf("%s-%d", comp, opt.Level)
	}
	return fmt.Sprintf("%s: %d files, %s -> %s (%.1f%%), %s, %.1fs, sha256:%s",
		output, st.Files, humanBytes(st.InputBytes), humanBytes(st.Size), ratio, comp,
		d.Seconds(), hex.EncodeToString(digest[:]))
}

// alignUp rounds n up to the payload alignment.
func alignUp(n int64) int64 {
	return (n + trailer.PadSize - 1) / trailer.PadSize * trailer.PadSize
}

// stubParts are the executables a packed file starts with: the run-time
// stub and, when there is one, the helper it starts for the requests that
// need the image codecs.
type stubParts struct {
	stub, helper         io.ReaderAt
	stubSize, helperSize int64
	helperRawSize        int64 // unpacked size of an LZ4-packed helper, or 0
	close                func()
}

// stubExecutables returns what parker writes before the payload: the
// run-time stub and the helper embedded at build time (make), or, in a parker built
// without them (go install), parker's own executable, which is a complete
// stub by itself, only slower to start.
func stubExecutables() (*stubParts, error) {
	if len(embeddedStub) > 0 && len(embeddedHelper) > 8 {
		block := embeddedHelper[8:]
		return &stubParts{
			stub: bytes.NewReader(embeddedStub), stubSize: int64(len(embeddedStub)),
			helper: bytes.NewReader(block), helperSize: int64(len(block)),
			helperRawSize: int64(binary.LittleEndian.Uint64(embeddedHelper)),
			close:         func() {},
		}, nil
	}
	self, err := stubSource()
	if err != nil {
		return nil, fmt.Errorf("cannot locate own executable: %w", err)
	}
	sf, err := os.Open(self)
	if err != nil {
		return nil, fmt.Errorf("read own executable: %w", err)
	}
	size, err := stubLength(sf)
	if err != nil {
		sf.Close()
		return nil, fmt.Errorf("read own executable %s: %w", self, err)
	}
	return &stubParts{stub: sf, stubSize: size, close: func() { sf.Close() }}, nil
}

// stubLength is how much of parker's own executable to copy: all of it, or
// only the stub if this parker was itself taken from a packed file (whose
// stub is then a complete parker too).
func stubLength(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	t, err := trailer.Read(f, fi.Size())
	switch {
	case err == nil:
		return int64(t.StubSize), nil
	case errors.Is(err, trailer.ErrNoTrailer):
		return fi.Size(), nil
	}
	return 0, err
}

// outputPath makes the output absolute with its directory's symlinks
// resolved (the temp file must be created in the same directory as the
// final name for the rename to be atomic).
func outputPath(output string) (string, error) {
	abs, err := filepath.Abs(output)
	if err != nil {
		return "", err
	}
	dir, name := filepath.Split(abs)
	if name == "" || name == "." || name == ".." {
		return "", fmt.Errorf("output %s: not a file name", output)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", output, errnoOf(err))
	}
	return filepath.Join(real, name), nil
}

func splitRel(rel string) (dir, base string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return ".", rel
}
