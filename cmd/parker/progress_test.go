package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFormatProgress(t *testing.T) {
	half := counts{files: 1234, filesTotal: 5678, bytes: 120 << 20, bytesTotal: 240 << 20, elapsed: 2 * time.Second}
	tests := []struct {
		name  string
		c     counts
		width int
		want  string
	}{
		{"wide", half, 120, " 50% [====================>                   ]  120.0/240.0 MiB  ETA  0:02  1234/5678 files   60.0 MiB/s"},
		{"80 columns", half, 80, " 50% [=======>      ]  120.0/240.0 MiB  ETA  0:02  1234/5678 files   60.0 MiB/s"},
		{"no bar", half, 50, " 50%  120.0/240.0 MiB  ETA  0:02  1234/5678 files"},
		{"narrow", half, 30, " 50%  120.0/240.0 MiB"},
		{"tiny", half, 4, " 50"},
		{"start", counts{filesTotal: 3, bytesTotal: 100}, 60, "  0% [>                  ]    0/100 B  ETA --:--  0/3 files"},
		{"done", counts{files: 3, filesTotal: 3, bytes: 3 << 30, bytesTotal: 3 << 30, elapsed: time.Hour}, 100,
			"100% [========================================]  3.0/3.0 GiB  ETA  0:00  3/3 files    0.9 MiB/s"},
		{"empty tree", counts{}, 60, "100% [=======================]  0/0 B  ETA --:--  0/0 files"},
		{"hours", counts{files: 1, filesTotal: 2, bytes: 1 << 20, bytesTotal: 10000 << 20, elapsed: time.Second}, 70,
			"  0% [>           ]  0.0/9.8 GiB  ETA 2:46:39  1/2 files    1.0 MiB/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := formatProgress(tt.c, tt.width)
			if got != tt.want {
				t.Errorf("formatProgress(width %d)\n got %q\nwant %q", tt.width, got, tt.want)
			}
			if len(got) > max(tt.width-1, 0) {
				t.Errorf("line of %d columns does not fit %d", len(got), tt.width)
			}
		})
	}
}

func TestFormatProgressFitsEveryWidth(t *testing.T) {
	c := counts{files: 99999, filesTotal: 100000, bytes: 5 << 40, bytesTotal: 6 << 40, elapsed: 90 * time.Minute}
	for w := 0; w <= 200; w++ {
		if got := formatProgress(c, w); len(got) > max(w-1, 0) || strings.Contains(got, "\n") {
			t.Fatalf("width %d: %q", w, got)
		}
	}
}

func TestFormatScan(t *testing.T) {
	for _, tt := range []struct {
		entries int
		bytes   int64
		width   int
		want    string
	}{
		{12345, 3 << 30, 80, "scanning: 12345 entries, 3.0 GiB"},
		{0, 0, 80, "scanning: 0 entries, 0 B"},
		{12345, 3 << 30, 20, "scanning: 12345 ent"},
		{1, 1, 0, ""},
	} {
		if got := formatScan(tt.entries, tt.bytes, tt.width); got != tt.want {
			t.Errorf("formatScan(%d, %d, %d) = %q, want %q", tt.entries, tt.bytes, tt.width, got, tt.want)
		}
	}
}

func TestClock(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0:00", 59 * time.Second: "0:59", 61 * time.Second: "1:01", time.Hour + 2*time.Second: "1:00:02", -time.Second: "0:00",
	} {
		if got := clock(d); got != want {
			t.Errorf("clock(%v) = %q, want %q", d, got, want)
		}
	}
}

// A non-terminal stderr gets no progress line and no escape codes, only the
// lines printed explicitly.
func TestUINotATerminal(t *testing.T) {
	var b bytes.Buffer
	u := newUI(&b, false, false)
	u.startProgress(10, 100)
	u.progress(5, 50)
	time.Sleep(2 * progressInterval)
	u.stopProgress()
	u.warn("hidden without -v")
	u.notice("shown")
	if got := b.String(); got != "parker: warning: shown\n" || u.warnings != 1 {
		t.Errorf("output %q, %d warnings", got, u.warnings)
	}
	b.Reset()
	v := newUI(&b, false, true)
	v.warn("w")
	v.stage("walk", time.Now(), "3 entries")
	if got := b.String(); !strings.HasPrefix(got, "parker: warning: w\nparker: walk: 3 entries (0.00s)\n") {
		t.Errorf("verbose output %q", got)
	}
}

// redraw on a "terminal" writes one \r-prefixed line and clears it after.
func TestUIRedraw(t *testing.T) {
	var b bytes.Buffer
	u := newUI(&b, false, false)
	u.isTTY = true // tty stays -1: GetSize fails, the 80-column default applies
	u.filesTotal.Store(2)
	u.bytesTotal.Store(1000)
	u.progress(1, 500)
	u.start.Store(time.Now().Add(-time.Second).UnixNano())
	u.redraw()
	u.redraw() // unchanged: not drawn again
	u.printf("summary")
	got := b.String()
	if strings.Count(got, "\r") != 2 || !strings.HasPrefix(got, "\r 50% [") || !strings.HasSuffix(got, "\r\x1b[Ksummary\n") {
		t.Errorf("output %q", got)
	}
}

// The ticker draws the scan line, then the progress line, then clears up.
func TestUITicker(t *testing.T) {
	var b syncBuffer
	u := newUI(&b, false, false)
	u.isTTY = true
	u.startScan()
	u.scanned(7, 700)
	time.Sleep(3 * progressInterval)
	u.startProgress(7, 700)
	u.progress(7, 700)
	time.Sleep(3 * progressInterval)
	u.stopProgress()
	got := b.String()
	if !strings.Contains(got, "\rscanning: 7 entries, 700 B\x1b[K") || !strings.Contains(got, "\r100% [") || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("output %q", got)
	}
}

// syncBuffer is a bytes.Buffer safe for the ticker goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
