package packed

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/parkerpack/parker/image"
	"golang.org/x/sys/unix"
)

func TestAppendMode(t *testing.T) {
	for _, tc := range []struct {
		mode fs.FileMode
		want string
	}{
		{0o644, "-rw-r--r--"},
		{0, "----------"},
		{fs.ModeDir | 0o755, "drwxr-xr-x"},
		{fs.ModeDir | fs.ModeSticky | 0o777, "drwxrwxrwt"},
		{fs.ModeDir | fs.ModeSticky | 0o776, "drwxrwxrwT"},
		{fs.ModeDir | fs.ModeSetgid | 0o2775, "drwxrwsr-x"},
		{fs.ModeSetuid | 0o755, "-rwsr-xr-x"},
		{fs.ModeSetuid | 0o644, "-rwSr--r--"},
		{fs.ModeSetgid | 0o745, "-rwxr-Sr-x"},
		{fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o777, "-rwsrwsrwt"},
		{fs.ModeSymlink | 0o777, "lrwxrwxrwx"},
		{fs.ModeDevice | fs.ModeCharDevice | 0o620, "crw--w----"},
		{fs.ModeDevice | 0o660, "brw-rw----"},
		{fs.ModeNamedPipe | 0o640, "prw-r-----"},
		{fs.ModeSocket | 0o755, "srwxr-xr-x"},
		{0o421, "-r---w---x"},
	} {
		if got := string(appendMode(nil, tc.mode)); got != tc.want {
			t.Errorf("mode %v: %q, want %q", tc.mode, got, tc.want)
		}
	}
}

// unescape reads back what appendEscaped wrote: the test's own decoder.
func unescape(s string) (string, bool) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		i++
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\')
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		default:
			if i+2 >= len(s) {
				return "", false
			}
			var v int
			for _, d := range s[i : i+3] {
				if d < '0' || d > '7' {
					return "", false
				}
				v = v*8 + int(d-'0')
			}
			if v > 255 {
				return "", false
			}
			b = append(b, byte(v))
			i += 2
		}
	}
	return string(b), true
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain.txt":         "plain.txt",
		"with space":        "with space",
		"héllo 日本 😀":        "héllo 日本 😀",
		"back\\slash":       `back\\slash`,
		"new\nline":         `new\nline`,
		"tab\tand\rcr":      `tab\tand\rcr`,
		"\x01\x1b[31m\x7f":  `\001\033[31m\177`,
		"bad-\xff\xfe.txt":  `bad-\377\376.txt`,
		"caf\xe9":           `caf\351`,
		"dir-\xc3\x28":      `dir-\303(`,
		"line\u2028sep":     `line\342\200\250sep`,
		"bidi\u202eevil":    `bidi\342\200\256evil`,
		"nbsp\u00a0":        `nbsp\302\240`,
		"c1\u009b":          `c1\302\233`,
		"replacement\ufffd": "replacement\ufffd",
		"a -> b":            "a -> b",
	} {
		if got := string(appendEscaped(nil, in)); got != want {
			t.Errorf("escape %q = %q, want %q", in, got, want)
		}
	}
	// Any bytes: one line of printable text that reads back as they were.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		b := make([]byte, rng.IntN(20))
		for j := range b {
			b[j] = byte(rng.IntN(256))
			if rng.IntN(3) == 0 {
				b[j] = "\\\n\t\r\x00\xc3\xa9\xe6\x97\xa5"[rng.IntN(10)]
			}
		}
		e := string(appendEscaped(nil, string(b)))
		if back, ok := unescape(e); !ok || back != string(b) {
			t.Fatalf("escape %q = %q, reads back as %q (%v)", b, e, back, ok)
		}
		for _, r := range e {
			if r == 0xfffd && !strings.ContainsRune(string(b), 0xfffd) || r < 0x20 || r == 0x7f {
				t.Fatalf("escape %q = %q: holds %U", b, e, r)
			}
		}
	}
}

func node(path string, mode fs.FileMode) *image.Node {
	return &image.Node{Path: path, Name: filepath.Base(path), Mode: mode, ModTime: 1714557600, Nlink: 1}
}

func TestAppendLong(t *testing.T) {
	root := node(".", fs.ModeDir|0o755)
	root.Size = 101
	file := node("links/a", 0o644)
	file.Size, file.UID, file.GID = 5000, 1000, 100
	big := node("sparse/huge", 0o600)
	big.Size, big.UID, big.GID = 5<<30, 4000000000, 4000000000
	sym := node("links/sym", fs.ModeSymlink|0o777)
	sym.Link, sym.Size = "../a b", 6
	null := node("special/null", fs.ModeDevice|fs.ModeCharDevice|0o666)
	null.Rdev = unix.Mkdev(1, 3)
	bigdev := node("special/bigdev", fs.ModeDevice|0o600)
	bigdev.Rdev = unix.Mkdev(300, 70000)
	odd := node("names/new\nline", fs.ModeNamedPipe|0o640)
	empty := node("empty", fs.ModeDir|fs.ModeSticky|0o777)
	empty.Size = 3
	for _, tc := range []struct {
		n        *image.Node
		hardlink string
		want     string
	}{
		{root, "", "drwxr-xr-x 0/0             101 2024-05-01 10:00 ./"},
		{empty, "", "drwxrwxrwt 0/0               3 2024-05-01 10:00 empty/"},
		{file, "", "-rw-r--r-- 1000/100       5000 2024-05-01 10:00 links/a"},
		{file, "links/a 0", "-rw-r--r-- 1000/100       5000 2024-05-01 10:00 links/a link to links/a 0"},
		{big, "", "-rw------- 4000000000/4000000000 5368709120 2024-05-01 10:00 sparse/huge"},
		{sym, "", "lrwxrwxrwx 0/0               6 2024-05-01 10:00 links/sym -> ../a b"},
		{null, "", "crw-rw-rw- 0/0             1,3 2024-05-01 10:00 special/null"},
		{bigdev, "", "brw------- 0/0       300,70000 2024-05-01 10:00 special/bigdev"},
		{odd, "", `prw-r----- 0/0               0 2024-05-01 10:00 names/new\nline`},
	} {
		if got := string(appendLong(nil, tc.n, tc.hardlink)); got != tc.want {
			t.Errorf("long %s:\n got %q\nwant %q", tc.n.Path, got, tc.want)
		}
	}
}

func TestAppendJSON(t *testing.T) {
	sym := node("links/\xffsym", fs.ModeSymlink|0o777)
	sym.Link, sym.Size = "a\n\"b\"", 5
	null := node("special/null", fs.ModeDevice|fs.ModeCharDevice|fs.ModeSetgid|0o666)
	null.Rdev, null.UID = unix.Mkdev(1, 3), 7
	file := node("links/a.2", 0o644)
	file.Size = 5000
	for _, tc := range []struct {
		n        *image.Node
		hardlink string
		want     map[string]any
	}{
		{node(".", fs.ModeDir|0o755), "", map[string]any{"path": ".", "type": "dir", "mode": "0755", "uid": 0.0, "gid": 0.0, "size": 0.0, "mtime": 1714557600.0}},
		{sym, "", map[string]any{"path": "links/\ufffdsym", "type": "symlink", "mode": "0777", "uid": 0.0, "gid": 0.0, "size": 5.0, "mtime": 1714557600.0, "link": "a\n\"b\""}},
		{null, "", map[string]any{"path": "special/null", "type": "char", "mode": "2666", "uid": 7.0, "gid": 0.0, "size": 0.0, "mtime": 1714557600.0, "major": 1.0, "minor": 3.0}},
		{file, "links/a", map[string]any{"path": "links/a.2", "type": "file", "mode": "0644", "uid": 0.0, "gid": 0.0, "size": 5000.0, "mtime": 1714557600.0, "hardlink": "links/a"}},
		{node("p", fs.ModeNamedPipe|0o600), "", map[string]any{"path": "p", "type": "fifo", "mode": "0600", "uid": 0.0, "gid": 0.0, "size": 0.0, "mtime": 1714557600.0}},
		{node("s", fs.ModeSocket|0o755), "", map[string]any{"path": "s", "type": "socket", "mode": "0755", "uid": 0.0, "gid": 0.0, "size": 0.0, "mtime": 1714557600.0}},
		{node("b", fs.ModeDevice|0o600), "", map[string]any{"path": "b", "type": "block", "mode": "0600", "uid": 0.0, "gid": 0.0, "size": 0.0, "mtime": 1714557600.0, "major": 0.0, "minor": 0.0}},
	} {
		b := appendJSON(nil, tc.n, tc.hardlink)
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil || bytes.IndexByte(b, '\n') >= 0 {
			t.Errorf("%s: %v: %s", tc.n.Path, err, b)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.n.Path, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", tc.n.Path, k, got[k], v)
			}
		}
	}
}

// testImage writes an image of every kind of entry and returns it.
func testImage(t *testing.T, opt image.Options, extra ...image.Entry) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		t.Fatal(err)
	}
	mt := int64(1714557600)
	es := []image.Entry{
		{Path: ".", Mode: fs.ModeDir | 0o755, ModTime: mt},
		{Path: "app", Mode: 0o755, Size: 6, Source: src, ModTime: mt},
		{Path: "dir", Mode: fs.ModeDir | 0o750, ModTime: mt, UID: 5, GID: 6},
		{Path: "dir/empty", Mode: fs.ModeDir | 0o700, ModTime: mt},
		{Path: "dir/f", Mode: 0o600, Size: 6, Source: src, ModTime: mt, Dev: st.Dev, Ino: st.Ino},
		{Path: "dir/hl", Mode: 0o600, Size: 6, Source: src, ModTime: mt, Dev: st.Dev, Ino: st.Ino},
		{Path: "dir/sym", Mode: fs.ModeSymlink | 0o777, Link: "f", ModTime: mt},
		{Path: "dir/fifo", Mode: fs.ModeNamedPipe | 0o644, ModTime: mt},
		{Path: "dir/sock", Mode: fs.ModeSocket | 0o755, ModTime: mt},
		{Path: "dir/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: unix.Mkdev(1, 3), ModTime: mt},
		{Path: "new\nline", Mode: 0o644, ModTime: mt},
		{Path: "with space", Mode: 0o644, ModTime: mt},
	}
	f, err := os.Create(filepath.Join(dir, "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opt.KeepOwner = true
	w, err := image.NewWriter(f, 0, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(es, extra...) {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b[:stats.Size]
}

func list(t *testing.T, img []byte, f Format) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := List(&out, bytes.NewReader(img), int64(len(img)), f)
	return out.String(), err
}

func TestList(t *testing.T) {
	img := testImage(t, image.DefaultOptions())
	names, err := list(t, img, Names)
	if err != nil {
		t.Fatal(err)
	}
	want := "./\napp\ndir/\ndir/empty/\ndir/f\ndir/fifo\ndir/hl\ndir/null\ndir/sock\ndir/sym\nnew\\nline\nwith space\n"
	if names != want {
		t.Errorf("names:\n%s\nwant:\n%s", names, want)
	}
	long, err := list(t, img, Long)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(long, "\n"), "\n")
	for i, w := range map[int]string{
		1: "-rwxr-xr-x 0/0               6 2024-05-01 10:00 app",
		2: "drwxr-x--- 5/6",
		4: "-rw------- 0/0               6 2024-05-01 10:00 dir/f",
		5: "prw-r--r-- 0/0               0 2024-05-01 10:00 dir/fifo",
		6: "-rw------- 0/0               6 2024-05-01 10:00 dir/hl link to dir/f",
		7: "crw-rw-rw- 0/0             1,3 2024-05-01 10:00 dir/null",
		8: "srwxr-xr-x 0/0               0 2024-05-01 10:00 dir/sock",
		9: "lrwxrwxrwx 0/0               1 2024-05-01 10:00 dir/sym -> f",
	} {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("long line %d: want %q in\n%s", i, w, long)
		}
	}
	js, err := list(t, img, JSON)
	if err != nil {
		t.Fatal(err)
	}
	var entries []map[string]any
	if err := json.Unmarshal([]byte(js), &entries); err != nil {
		t.Fatalf("JSON: %v\n%s", err, js)
	}
	// The three listings name the same entries in the same order.
	nameLines := strings.Split(strings.TrimSuffix(names, "\n"), "\n")
	if len(entries) != len(nameLines) || len(lines) != len(nameLines) {
		t.Fatalf("%d names, %d long lines, %d JSON entries", len(nameLines), len(lines), len(entries))
	}
	for i, e := range entries {
		p := string(appendEscaped(nil, e["path"].(string)))
		if e["type"] == "dir" {
			p += "/"
		}
		if p != nameLines[i] || !strings.Contains(lines[i], " "+p) {
			t.Errorf("entry %d: JSON %q, name %q, long %q", i, e["path"], nameLines[i], lines[i])
		}
	}
	if entries[6]["hardlink"] != "dir/f" || entries[9]["link"] != "f" || entries[7]["major"] != 1.0 {
		t.Errorf("JSON entries: %v", entries)
	}
}

// TestListDamaged: an image whose listing breaks part way is listed up to
// the damage, then the error; the JSON array stays valid.
func TestListDamaged(t *testing.T) {
	opt := image.DefaultOptions()
	opt.Compression, opt.Level = image.None, 0
	img := testImage(t, opt, image.Entry{Path: "zz", Mode: fs.ModeDir | 0o755},
		image.Entry{Path: "zz/a-ok", Mode: 0o644}, image.Entry{Path: "zz/broken-name", Mode: 0o644})
	intact, err := list(t, img, Names)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(img, []byte("broken-name"))
	if i < 0 || bytes.Count(img, []byte("broken-name")) != 1 {
		t.Fatal("name not found once in the uncompressed image")
	}
	img[i+6] = '/' // "broken/name": not a name a directory may hold
	for _, f := range []Format{Names, Long, JSON} {
		out, err := list(t, img, f)
		if err == nil || !errors.Is(err, image.ErrFormat) || !strings.HasPrefix(err.Error(), "the image could not be read: ") {
			t.Errorf("format %d: error %v, want ErrFormat", f, err)
		}
		if f == Names {
			want := strings.TrimSuffix(intact, "zz/broken-name\n")
			if out != want || !strings.HasSuffix(out, "zz/a-ok\n") {
				t.Errorf("damaged listing:\n%s\nwant:\n%s", out, want)
			}
		}
		if f == JSON {
			var entries []map[string]any
			if err := json.Unmarshal([]byte(out), &entries); err != nil || entries[len(entries)-1]["path"] != "zz/a-ok" {
				t.Errorf("damaged JSON listing: %v\n%s", err, out)
			}
		}
	}
	// Not an image at all: nothing listed, one error; JSON prints nothing.
	for _, f := range []Format{Names, JSON} {
		out, err := list(t, make([]byte, 4096), f)
		if out != "" || !errors.Is(err, image.ErrFormat) {
			t.Errorf("zeros, format %d: %q, %v", f, out, err)
		}
	}
}

// brokenPipe accepts n bytes, then fails as a pipe without a reader does.
type brokenPipe struct{ n int }

func (p *brokenPipe) Write(b []byte) (int, error) {
	if len(b) > p.n {
		w := p.n
		p.n = 0
		return w, &fs.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.EPIPE}
	}
	p.n -= len(b)
	return len(b), nil
}

func TestListWriteError(t *testing.T) {
	var es []image.Entry
	for i := 0; i < 20000; i++ {
		es = append(es, image.Entry{Path: "many/" + strings.Repeat("x", 40) + string(rune('a'+i%26)) + strings.Repeat("y", i%50) + "-" + strconv.Itoa(i), Mode: 0o644})
	}
	img := testImage(t, image.DefaultOptions(), es...)
	w := &brokenPipe{n: 100}
	err := List(w, bytes.NewReader(img), int64(len(img)), Names)
	if !errors.Is(err, syscall.EPIPE) || err.Error() != "cannot write the listing: broken pipe" {
		t.Errorf("error %v, want EPIPE, worded for a line", err)
	}
	if err := List(io.Discard, bytes.NewReader(img), int64(len(img)), Long); err != nil {
		t.Errorf("intact: %v", err)
	}
}
