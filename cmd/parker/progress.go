package main

// The progress line is hand-written on purpose: a parker built with plain
// go install is the stub inside every packed file, about 4 MiB, and the
// maintained progress-bar libraries add 260 KiB
// (github.com/vbauerster/mpb/v8, Unicode width tables) to 1.6 MiB
// (github.com/schollz/progressbar/v3, net/http); see README, Dependencies.
// One redrawn ASCII line needs neither.

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/parkerpack/parker/internal/human"
)

// progressInterval caps redraws at 10 per second.
const progressInterval = 100 * time.Millisecond

// counts is one progress sample.
type counts struct {
	files, filesTotal int
	bytes, bytesTotal int64
	elapsed           time.Duration
}

// formatProgress renders c in at most width-1 columns (the last column is
// left free so no terminal wraps). Fields are dropped, least useful first,
// when the line does not fit:
//
//	42% [=======>         ] 120.3/270.1 MiB  ETA  0:03  1234/5678 files   61.3 MiB/s
func formatProgress(c counts, width int) string {
	frac := 1.0
	switch {
	case c.bytesTotal > 0:
		frac = float64(c.bytes) / float64(c.bytesTotal)
	case c.filesTotal > 0:
		frac = float64(c.files) / float64(c.filesTotal)
	}
	frac = min(max(frac, 0), 1)
	pct := fmt.Sprintf("%3d%%", int(frac*100))
	// Numbers are padded to their final width so the bar does not jitter.
	files := fmt.Sprintf("%*d/%d files", len(strconv.Itoa(c.filesTotal)), c.files, c.filesTotal)
	bytes := bytePair(c.bytes, c.bytesTotal)
	rate, eta := "", "ETA --:--"
	if secs := c.elapsed.Seconds(); secs > 0 {
		r := float64(c.bytes) / secs
		rate = fmt.Sprintf("%5.1f MiB/s", r/(1<<20))
		if r > 0 && c.bytes > 0 {
			left := float64(c.bytesTotal-c.bytes) / r
			eta = fmt.Sprintf("ETA %5s", clock(time.Duration(left*float64(time.Second))))
		}
	}
	// Most useful first; the bar takes whatever room is left.
	fields := []string{pct, bytes, eta, files}
	if rate != "" {
		fields = append(fields, rate)
	}
	avail := width - 1
	for n := len(fields); n > 0; n-- {
		line := strings.Join(fields[:n], "  ")
		if len(line) > avail {
			continue
		}
		// Room for " [" + at least 10 cells + "]" after the percentage?
		if barw := avail - len(line) - 3; barw >= 10 {
			barw = min(barw, 40)
			return pct + " " + bar(frac, barw) + strings.TrimPrefix(line, pct)
		}
		return line
	}
	if avail <= 0 {
		return ""
	}
	return pct[:min(len(pct), avail)]
}

// formatScan renders the walk's line: "scanning: 12345 entries, 1.2 GiB".
func formatScan(entries int, bytes int64, width int) string {
	line := fmt.Sprintf("scanning: %d entries, %s", entries, human.Bytes(bytes))
	return line[:min(len(line), max(width-1, 0))]
}

// bar draws [=====>    ] with w cells inside the brackets.
func bar(frac float64, w int) string {
	done := min(int(frac*float64(w)), w)
	if done == w {
		return "[" + strings.Repeat("=", w) + "]"
	}
	return "[" + strings.Repeat("=", done) + ">" + strings.Repeat(" ", w-done-1) + "]"
}

// clock formats d as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// bytePair formats done/total in the unit of total: 120.3/270.1 MiB.
func bytePair(done, total int64) string {
	size, unit := human.Unit(total)
	if size == 1 {
		return fmt.Sprintf("%*d/%d B", len(strconv.FormatInt(total, 10)), done, total)
	}
	t := fmt.Sprintf("%.1f", float64(total)/float64(size))
	return fmt.Sprintf("%*.1f/%s %s", len(t), float64(done)/float64(size), t, unit)
}

// ui prints everything parker says on stderr: the progress line (only on a
// terminal), warnings, stages and the summary. Lines never interleave with a
// half-drawn progress line.
type ui struct {
	mu      sync.Mutex
	w       io.Writer
	quiet   bool
	verbose bool
	tty     int  // terminal fd, for its width
	isTTY   bool // stderr is a terminal and not -q: draw the progress line
	drawn   bool
	last    string
	closed  bool // after final: no more redraws

	warnings int // warn's
	packed   int // leftOut's

	// progress state, written by the walker and the image writer's goroutine
	scanning          atomic.Bool
	files, filesTotal atomic.Int64
	bytes, bytesTotal atomic.Int64
	start             atomic.Int64 // of the current phase, in Unix nanoseconds
	stop              chan struct{}
	done              chan struct{}
}

func newUI(w io.Writer, quiet, verbose bool) *ui {
	u := &ui{w: w, quiet: quiet, verbose: verbose, tty: -1}
	if f, ok := w.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		u.tty, u.isTTY = int(f.Fd()), true
	}
	return u
}

// printf prints one line, clearing the progress line first.
func (u *ui) printf(format string, a ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.clearLocked()
	fmt.Fprintf(u.w, format+"\n", a...)
}

// final prints a last line and stops all further output but the caller's
// exit (the signal path, racing the progress goroutine).
func (u *ui) final(format string, a ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.clearLocked()
	fmt.Fprintf(u.w, format+"\n", a...)
	u.closed = true
}

// warn prints a warning with -v and counts it otherwise.
func (u *ui) warn(msg string) { u.count(&u.warnings, msg) }

// leftOut reports an earlier packed file left out of the image: shown
// with -v, counted apart from the warnings otherwise.
func (u *ui) leftOut(msg string) { u.count(&u.packed, msg) }

// count adds one to *n and prints msg as a warning with -v.
func (u *ui) count(n *int, msg string) {
	u.mu.Lock()
	*n++
	u.mu.Unlock()
	if u.verbose {
		u.printf("parker: warning: %s", msg)
	}
}

// note prints, with -v only, what went as expected but may be worth
// knowing; it is not a warning.
func (u *ui) note(msg string) {
	if u.verbose {
		u.printf("parker: %s", msg)
	}
}

// tally says, without -v, how much -v would have shown:
//
//	parker: left out 2 packed files; run with -v to see them
//	parker: 1 warning; run with -v to see it
func (u *ui) tally() {
	if u.verbose {
		return
	}
	u.mu.Lock()
	packed, warnings := u.packed, u.warnings
	u.mu.Unlock()
	see := func(n int) string {
		if n == 1 {
			return "run with -v to see it"
		}
		return "run with -v to see them"
	}
	if packed > 0 {
		u.printf("parker: left out %s; %s", plural(packed, "packed file"), see(packed))
	}
	if warnings > 0 {
		u.printf("parker: %s; %s", plural(warnings, "warning"), see(warnings))
	}
}

// notice prints a warning unless -q: for what the user must see.
func (u *ui) notice(msg string) {
	if !u.quiet {
		u.printf("parker: warning: %s", msg)
	}
}

// stage prints a stage and its duration with -v.
func (u *ui) stage(name string, since time.Time, detail string) {
	if u.verbose {
		if detail != "" {
			detail = ": " + detail
		}
		u.printf("parker: %s%s (%.2fs)", name, detail, time.Since(since).Seconds())
	}
}

func (u *ui) clearLocked() {
	if u.drawn {
		fmt.Fprint(u.w, "\r\x1b[K")
		u.drawn = false
		u.last = ""
	}
}

// startScan shows, while the working directory is walked, how much has
// been found so far: a walk of a million files takes a while too.
func (u *ui) startScan() {
	u.scanning.Store(true)
	u.startTicker()
}

// startProgress switches the line to the packing progress against the
// given totals.
func (u *ui) startProgress(filesTotal int, bytesTotal int64) {
	u.files.Store(0)
	u.bytes.Store(0)
	u.filesTotal.Store(int64(filesTotal))
	u.bytesTotal.Store(bytesTotal)
	u.start.Store(time.Now().UnixNano())
	u.scanning.Store(false)
	u.startTicker()
}

// startTicker redraws the line every progressInterval, when stderr is a
// terminal, until stopProgress.
func (u *ui) startTicker() {
	if !u.isTTY || u.stop != nil {
		return
	}
	u.stop, u.done = make(chan struct{}), make(chan struct{})
	if u.start.Load() == 0 {
		u.start.Store(time.Now().UnixNano())
	}
	go func() {
		defer close(u.done)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-u.stop:
				return
			case <-t.C:
				u.redraw()
			}
		}
	}()
}

// scanned is the walker's counter: entries and bytes found so far.
func (u *ui) scanned(entries int, bytes int64) {
	u.files.Store(int64(entries))
	u.bytes.Store(bytes)
}

// progress is image.Options.Progress.
func (u *ui) progress(files int, bytes int64) {
	u.files.Store(int64(files))
	u.bytes.Store(bytes)
}

func (u *ui) redraw() {
	width := 80
	if w, _, err := term.GetSize(u.tty); err == nil && w > 0 {
		width = w
	}
	var line string
	if u.scanning.Load() {
		line = formatScan(int(u.files.Load()), u.bytes.Load(), width)
	} else {
		line = formatProgress(counts{
			files: int(u.files.Load()), filesTotal: int(u.filesTotal.Load()),
			bytes: u.bytes.Load(), bytesTotal: u.bytesTotal.Load(),
			elapsed: time.Since(time.Unix(0, u.start.Load())),
		}, width)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if line == u.last || u.closed {
		return
	}
	fmt.Fprint(u.w, "\r"+line+"\x1b[K")
	u.drawn, u.last = true, line
}

// stopProgress stops redrawing and clears the line.
func (u *ui) stopProgress() {
	if u.stop != nil {
		close(u.stop)
		<-u.done
		u.stop = nil
	}
	u.mu.Lock()
	u.clearLocked()
	u.mu.Unlock()
}
