package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/human"
	"github.com/parkerpack/parker/internal/walk"
	"github.com/parkerpack/parker/stub"
)

// stubSource names the executable whose bytes become the stub: parker
// itself. Tests point it at a small file.
var stubSource = stub.Executable

// testHookFinish, when set, runs just before the image is written (tests
// use it to make the writer fail half-way).
var testHookFinish func()

// pack runs `parker TARGET` and returns the exit status.
func pack(c *config, stderr io.Writer) int {
	u := newUI(stderr, c.quiet, c.verbose)
	j := &job{c: c, ui: u, out: &output{name: c.output}}
	stop := j.catchSignals()
	defer stop()
	if err := j.run(); err != nil {
		j.out.abort()
		u.stopProgress()
		// A failure to write the output is reported alone: which stage
		// met it changes nothing the user can do.
		var oe *outputError
		if errors.As(err, &oe) {
			err = oe
		}
		u.printf("parker: %v", err)
		return exitFail
	}
	return exitOK
}

// job is one pack, in four stages: check everything that can be checked
// before writing a byte, write the parts before the payload, write the
// image, and seal the file.
type job struct {
	c       *config
	ui      *ui
	out     *output
	closure atomic.Pointer[closureJob] // --closure; read by the signal handler
}

// plan is what check settles.
type plan struct {
	root   string // the working directory, absolute, without symlinks
	target *walk.Target
	rules  *walk.Rules
	stubs  *stubParts
	layout trailer.Layout
	needs  []trailer.Need // the target's libraries from the machine it runs on (hostNeeds)
}

// catchSignals removes the temp file on SIGINT, SIGTERM or SIGHUP, so an
// interrupted pack leaves nothing behind, and then dies of the same signal,
// as tar and mksquashfs do: the shell sees 130 for ^C and stops a script
// or loop that ran parker. A signal ignored when parker started (nohup)
// stays ignored. It returns the function that stops catching.
func (j *job) catchSignals() func() {
	var sigs []os.Signal
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(sig) {
			sigs = append(sigs, sig)
		}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			s := sig.(syscall.Signal)
			if cj := j.closure.Load(); cj != nil {
				cj.close()
			}
			if j.out.abort() {
				j.ui.final("parker: interrupted by %s after %s was written", unix.SignalName(s), j.c.output)
			} else {
				j.ui.final("parker: interrupted by %s; nothing written", unix.SignalName(s))
			}
			dieOf(s)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// dieOf ends parker by sig, its default action restored, and exits
// 128+sig as a shell would report it should the signal somehow not end
// the process.
func dieOf(sig syscall.Signal) {
	signal.Reset(sig)
	unix.Kill(os.Getpid(), sig)
	time.Sleep(time.Second)
	os.Exit(128 + int(sig))
}

func (j *job) run() error {
	start := time.Now()
	p, err := j.check()
	if err != nil {
		return err
	}
	defer p.stubs.close()
	if err := j.out.create(); err != nil {
		return err
	}
	if err := j.writeParts(p); err != nil {
		return err
	}
	st, err := j.writeImage(p)
	if err != nil {
		return err
	}
	digest, err := j.seal(p, st)
	if err != nil {
		return err
	}
	if u := j.ui; !j.c.quiet {
		u.tally()
		line := summary(j.c.output, st, j.c.opt, time.Since(start), digest)
		if cj := j.closure.Load(); cj != nil && cj.res != nil {
			line += fmt.Sprintf(" (the closure: %s, %s)", plural(len(cj.res.Store), "file"),
				human.Bytes(cj.res.Bytes()))
		}
		u.printf("%s", line)
	}
	return nil
}

// check resolves the working directory, the target, the ignore rules, the
// output and the stub: everything that can fail before a byte is written.
func (j *job) check() (*plan, error) {
	c := j.c
	root, err := walk.Root(c.dir)
	if err != nil {
		return nil, err
	}
	t, err := walk.ResolveTarget(root, c.dir, c.target)
	if err != nil {
		return nil, err
	}
	if !t.Executable() {
		j.ui.notice(fmt.Sprintf("target %s is not executable (mode %04o); the packed file will not be able to run it",
			c.target, t.Mode&0o7777))
	}
	rules, err := walk.LoadRules(root, c.excludes)
	if err != nil {
		return nil, err
	}
	if err := rules.CheckTarget(t); err != nil {
		return nil, err
	}
	if err := j.out.check(t); err != nil {
		return nil, err
	}
	stubs, err := stubExecutables()
	if err != nil {
		return nil, err
	}
	for _, msg := range stubWarnings(stubs.stub, stubs.stubSize) {
		j.ui.notice(msg)
	}
	pl := &plan{root: root, target: t, rules: rules, stubs: stubs,
		layout: trailer.Plan(stubs.stubSize, stubs.helperSize)}
	if !c.closure {
		pl.needs = hostNeeds(root, t.File)
	}
	return pl, nil
}

// writeParts writes the stub and, when there is one, the helper.
func (j *job) writeParts(p *plan) error {
	start := time.Now()
	s, l := p.stubs, p.layout
	if err := j.out.copyAt(0, trailer.Marked(s.stub), s.stubSize, "stub"); err != nil {
		return err
	}
	if s.helperSize == 0 {
		j.ui.stage("stub", start, fmt.Sprintf("%s, payload at offset %d", human.Bytes(s.stubSize), l.Offset))
		return nil
	}
	if err := j.out.copyAt(l.HelperOffset, s.helper, s.helperSize, "helper"); err != nil {
		return err
	}
	j.ui.stage("stub", start, fmt.Sprintf("%s, helper %s, payload at offset %d",
		human.Bytes(s.stubSize), human.Bytes(s.helperSize), l.Offset))
	return nil
}

// writeImage walks the working directory straight into the image writer,
// then has it compress and write the image at the payload's offset.
func (j *job) writeImage(p *plan) (image.Stats, error) {
	c, u := j.c, j.ui
	start := time.Now()
	opt := c.opt
	opt.Progress = u.progress
	w, err := image.NewWriter(j.out, p.layout.Offset, opt)
	if err != nil {
		return image.Stats{}, err
	}
	u.startScan()
	add := w.Add
	if c.closure {
		cj := &closureJob{c: c, ui: u, target: p.target.Path, skip: func(root, display string) func(string, *unix.Stat_t) bool {
			return j.out.skipper(root, display, p.target, u)
		}}
		j.closure.Store(cj)
		add = cj.add
	}
	n, err := walk.Tree(walk.Config{
		Root:    p.root,
		Display: c.dir,
		Rules:   p.rules,
		Target:  p.target,
		Skip:    j.out.skipper(p.root, c.dir, p.target, u),
		Add:     add,
		Warn:    u.warn,
		Scanned: u.scanned,
	})
	if err != nil {
		return image.Stats{}, err
	}
	u.stage("walk", start, fmt.Sprintf("%s, %s, %s", plural(n.Entries, "entry"), plural(n.Files, "file"), human.Bytes(n.Bytes)))
	if cj := j.closure.Load(); cj != nil {
		defer cj.close()
		files, bytes, err := cj.finish(w)
		if err != nil {
			return image.Stats{}, err
		}
		n.Files += files // for the progress line
		n.Bytes += bytes
	}

	start = time.Now()
	u.startProgress(n.Files, n.Bytes)
	if testHookFinish != nil {
		testHookFinish()
	}
	st, err := w.Finish()
	u.stopProgress()
	if err != nil {
		return image.Stats{}, err
	}
	u.stage("image", start, fmt.Sprintf("%s, %s, %s, %s", human.Bytes(st.Size), plural(st.Inodes, "inode"),
		plural(st.Duplicates, "duplicate"), plural(st.Fragments, "fragment block")))
	return st, nil
}

// seal digests the payload as written, reading it back, appends the
// trailer, and renames the file into place. It returns the digest.
func (j *job) seal(p *plan, st image.Stats) (digest [32]byte, err error) {
	c, u, l := j.c, j.ui, p.layout
	start := time.Now()
	h := sha256.New()
	// Large reads: this pass covers the whole payload, and 32 KiB reads
	// cost a tenth of its time in syscalls.
	if _, err := io.CopyBuffer(h, io.NewSectionReader(j.out, l.Offset, st.Size), make([]byte, 1<<20)); err != nil {
		return digest, fmt.Errorf("read back payload: %w", err)
	}
	tr := trailer.Trailer{
		HelperRawSize: uint64(p.stubs.helperRawSize),
		HelperDigest:  p.stubs.helperDigest,
		Size:          uint64(st.Size),
		Target:        p.target.Path,
		Compression:   c.opt.Compression,
		Level:         int32(c.opt.Level),
		BlockSize:     uint32(c.opt.BlockSize),
		CreatedBy:     "parker " + parkerVersion(),
		Limits:        c.limits,
	}
	l.Apply(&tr)
	copy(tr.Digest[:], h.Sum(nil))
	if c.opt.KeepOwner {
		tr.Flags |= trailer.KeepOwner
	}
	if c.closure {
		tr.Flags |= trailer.Closure
	} else {
		tr.Needs = p.needs
	}
	u.stage("digest", start, "sha256:"+hex.EncodeToString(tr.Digest[:]))

	start = time.Now()
	b, err := tr.MarshalBinary()
	if err != nil {
		return digest, err
	}
	end := l.Offset + st.Size
	if _, err := j.out.WriteAt(b, end); err != nil {
		return digest, err
	}
	size := end + int64(len(b))
	if err := j.out.finish(size); err != nil {
		return digest, err
	}
	if err := j.out.commit(); err != nil {
		return digest, err
	}
	u.stage("commit", start, fmt.Sprintf("%s, %s", c.output, human.Bytes(size)))
	return tr.Digest, nil
}

// summary is the one line printed after a pack:
//
//	pythond: 1234 files, 270.1 MiB -> 61.3 MiB (22.7%), zstd-3, 3.2s, sha256:...
//
// The ratio says what compression saved, so it is left out when the image
// is not smaller than the input: then the two sizes say all there is, and
// for a small input the ratio would only measure the image's fixed cost
// (its tables, the padding to 4 KiB): "18 B -> 4.0 KiB (22755.6%)".
func summary(output string, st image.Stats, opt image.Options, d time.Duration, digest [32]byte) string {
	sizes := human.Bytes(st.InputBytes) + " -> " + human.Bytes(st.Size)
	if st.InputBytes > 0 && st.Size < st.InputBytes {
		sizes += fmt.Sprintf(" (%.1f%%)", float64(st.Size)/float64(st.InputBytes)*100)
	}
	comp := opt.Compression
	if _, lo, hi := image.DefaultLevel(comp); lo != hi {
		comp = fmt.Sprintf("%s-%d", comp, opt.Level)
	}
	return fmt.Sprintf("%s: %s, %s, %s, %.1fs, sha256:%s",
		output, plural(st.Files, "file"), sizes, comp, d.Seconds(), hex.EncodeToString(digest[:]))
}

// plural counts n of a thing: "1 file", "0 files", "2 files"; a thing
// ending in a consonant and "y" takes "ies": "2 entries".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	if stem, ok := strings.CutSuffix(thing, "y"); ok && stem != "" && !strings.ContainsAny(stem[len(stem)-1:], "aeiou") {
		return fmt.Sprintf("%d %sies", n, stem)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// stubParts are the executables a packed file starts with: the run-time
// stub and, when there is one, the helper it starts for the requests that
// need the image codecs.
type stubParts struct {
	stub, helper         io.ReaderAt
	stubSize, helperSize int64
	helperRawSize        int64    // unpacked size of an LZ4-packed helper, or 0
	helperDigest         [32]byte // SHA-256 of the helper unpacked (trailer.HelperDigest)
	close                func()
}

// stubExecutables returns what parker writes before the payload: the
// run-time stub and the helper embedded at build time (make), or, in a parker built
// without them (go install), parker's own executable, which is a complete
// stub by itself, only slower to start.
func stubExecutables() (*stubParts, error) {
	const header = 8 + sha256.Size // hack/lz4block's
	if len(embeddedStub) > 0 && len(embeddedHelper) > header {
		block := embeddedHelper[header:]
		s := &stubParts{
			stub: bytes.NewReader(embeddedStub), stubSize: int64(len(embeddedStub)),
			helper: bytes.NewReader(block), helperSize: int64(len(block)),
			helperRawSize: int64(binary.LittleEndian.Uint64(embeddedHelper)),
			close:         func() {},
		}
		copy(s.helperDigest[:], embeddedHelper[8:header])
		return s, nil
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
