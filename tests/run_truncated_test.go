package tests

// A packed file cut short (a download or copy that stopped early) is named
// as such, by the file itself and by `parker inspect`: its stub carries a
// mark at the front as well as the trailer at the end.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/parkerpack/parker/image/trailer"
)

const cutShort = "truncated or damaged packed file: its parker trailer is missing"

func TestRunTruncated(t *testing.T) {
	good := toolPacked(t)
	data := readFile(t, good)
	tr, err := trailer.Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if !trailer.HasMark(data) {
		t.Fatalf("the packed file's stub has no mark: %q", data[:16])
	}
	dir := tempDir(t, "truncated")
	for _, cut := range []struct {
		name string
		size uint64
	}{
		{"in the stub", tr.StubSize / 2},
		{"in the helper", tr.HelperOffset + tr.HelperSize/2},
		{"in the payload", tr.Offset + tr.Size/2},
		{"at the payload's end", tr.Offset + tr.Size},
		{"one byte short", uint64(len(data)) - 1},
	} {
		if cut.size <= trailer.MarkOffset+trailer.MarkSize || cut.size >= uint64(len(data)) {
			t.Fatalf("%s: cut at %d of %d", cut.name, cut.size, len(data))
		}
		f := filepath.Join(dir, fmt.Sprintf("toold-%d", cut.size))
		if err := os.WriteFile(f, data[:cut.size], 0o755); err != nil {
			t.Fatal(err)
		}
		// Cut in the stub, it cannot even be loaded: only inspect can
		// tell.
		r := runFile(t, f, []string{"exit", "0"})
		if cut.size >= tr.StubSize && (r.Code != 125 || r.Stderr != "parker: "+f+": "+cutShort+"\n") {
			t.Errorf("run, cut %s: exit %d, stderr %q; want 125 and %q", cut.name, r.Code, r.Stderr, cutShort)
		}
		p := runParker(t, "", nil, "inspect", f)
		if want := "parker: inspect " + f + ": " + cutShort + "\n"; p.Code != 1 || p.Stderr != want {
			t.Errorf("inspect, cut %s: exit %d, stderr %q; want 1 and %q", cut.name, p.Code, p.Stderr, want)
		}
	}
	// Files that are not packed files are still called that, parker
	// itself included (it holds the stub, unmarked).
	for _, f := range []string{buildParker(t), "/bin/sh", "/etc/passwd"} {
		p := runParker(t, "", nil, "inspect", f)
		if want := "parker: inspect " + f + ": not a packed file (no parker trailer)\n"; p.Code != 1 || p.Stderr != want {
			t.Errorf("inspect %s: exit %d, stderr %q; want 1 and %q", f, p.Code, p.Stderr, want)
		}
	}
}
