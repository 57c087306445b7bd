package tests

// `parker ls` and a packed file's --parker-ls: the listing held to
// unsquashfs's (the paths, in order, and for -l and --json each entry's
// type, mode, owner, size, mtime and symlink target), its hard links to
// the source tree's inode numbers, and --parker-ls to parker ls, byte for
// byte, on both run-time stubs.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	lsOnce sync.Once
	lsFile string
	lsDir  string
)

// lsPacked packs (once) a tree with one of each kind of entry and names
// that need escaping, plus a wide directory whose listing is larger than
// a pipe holds, and returns the packed file and the tree.
func lsPacked(t *testing.T) (file, dir string) {
	t.Helper()
	lsOnce.Do(func() {
		wd := tempDir(t, "lswd")
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.WriteFile(filepath.Join(wd, "app"), []byte("#!/bin/sh\necho app\n"), 0o755))
		must(unix.Chmod(filepath.Join(wd, "app"), 0o4755))
		must(os.Mkdir(filepath.Join(wd, "dir"), 0o750))
		must(os.WriteFile(filepath.Join(wd, "dir", "file"), []byte("hello\n"), 0o640))
		must(os.Symlink("file", filepath.Join(wd, "dir", "sym")))
		must(os.Link(filepath.Join(wd, "dir", "file"), filepath.Join(wd, "dir", "hard")))
		must(os.Mkdir(filepath.Join(wd, "empty"), 0o755))
		must(unix.Chmod(filepath.Join(wd, "empty"), 0o1777))
		must(unix.Mkfifo(filepath.Join(wd, "fifo"), 0o600))
		for _, n := range []string{"with space", "new\nline", "tab\there", `back\slash`, "bad-\xff\xfe", "arrow -> name", "héllo"} {
			must(os.WriteFile(filepath.Join(wd, n), []byte(n), 0o644))
		}
		must(os.Symlink("tar\x80get with space", filepath.Join(wd, "odd-link")))
		if os.Geteuid() == 0 {
			must(unix.Mknod(filepath.Join(wd, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
			must(unix.Mknod(filepath.Join(wd, "loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 200))))
			must(unix.Chmod(filepath.Join(wd, "null"), 0o666)) // past the umask
			must(unix.Chmod(filepath.Join(wd, "loop"), 0o660))
			must(os.Lchown(filepath.Join(wd, "dir", "file"), 1000, 4000000000))
		}
		must(os.Mkdir(filepath.Join(wd, "wide"), 0o755))
		for i := 0; i < 4000; i++ {
			must(os.WriteFile(filepath.Join(wd, "wide", fmt.Sprintf("%04d-%s", i, strings.Repeat("w", 80))), nil, 0o644))
		}
		lsDir = wd
		lsFile = pack(t, wd, "app", "-q", "--keep-owner")
	})
	if lsFile == "" {
		t.Fatal("packing the ls tree failed in an earlier test")
	}
	return lsFile, lsDir
}

// lsEntry is one entry of a long listing, names unescaped.
type lsEntry struct {
	path, mode, uid, gid, size, mtime, link, hardlink string
}

// unescapeName reads back a name as the listing escapes it (a backslash
// before \, n, t, r or three octal digits).
func unescapeName(t *testing.T, s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && strings.IndexByte(`\ntr`, s[i+1]) >= 0:
			b = append(b, map[byte]byte{'\\': '\\', 'n': '\n', 't': '\t', 'r': '\r'}[s[i+1]])
			i++
		case i+3 < len(s):
			v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
			if err != nil {
				t.Fatalf("bad escape in %q", s)
			}
			b = append(b, byte(v))
			i += 3
		default:
			t.Fatalf("bad escape in %q", s)
		}
	}
	return string(b)
}

var longLine = regexp.MustCompile(`^([-dlcbps][-rwxsStT]{9}) (\d+)/(\d+) +(\d+|\d+, *\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) (.*)$`)

// parseOurLong parses `parker ls -l`: one entry a line.
func parseOurLong(t *testing.T, out string) []lsEntry {
	t.Helper()
	var es []lsEntry
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		m := longLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("parker ls -l: line %q", line)
		}
		e := lsEntry{mode: m[1], uid: m[2], gid: m[3], size: m[4], mtime: m[5]}
		rest := m[6]
		if p, first, ok := strings.Cut(rest, " link to "); ok {
			rest, e.hardlink = p, unescapeName(t, first)
		}
		if e.mode[0] == 'l' {
			p, target, ok := strings.Cut(rest, " -> ")
			if !ok {
				t.Fatalf("parker ls -l: symlink without a target: %q", line)
			}
			rest, e.link = p, unescapeName(t, target)
		}
		if e.mode[0] == 'd' != strings.HasSuffix(rest, "/") {
			t.Errorf("parker ls -l: %q: a trailing slash must mark exactly the directories", line)
		}
		if rest == "./" {
			rest = "" // the root
		}
		e.path = unescapeName(t, strings.TrimSuffix(rest, "/"))
		es = append(es, e)
	}
	return es
}

// unsquashfsLong lists the image with `unsquashfs -lln` (numeric owners,
// UTC), which prints names raw: a line that is not the start of an entry
// continues the name before it (a name with a newline).
func unsquashfsLong(t *testing.T, file string, off string) []lsEntry {
	t.Helper()
	needTool(t, "unsquashfs")
	cmd := exec.Command("unsquashfs", "-lln", "-o", off, file)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v", err)
	}
	var es []lsEntry
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		m := longLine.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[6], "squashfs-root") {
			if len(es) == 0 {
				t.Fatalf("unsquashfs -lln: line %q", line)
			}
			es[len(es)-1].path += "\n" + line
			continue
		}
		es = append(es, lsEntry{mode: m[1], uid: m[2], gid: m[3], size: strings.ReplaceAll(m[4], " ", ""), mtime: m[5],
			path: strings.TrimPrefix(strings.TrimPrefix(m[6], "squashfs-root"), "/")})
	}
	for i := range es {
		if es[i].mode[0] == 'l' {
			p, target, ok := strings.Cut(es[i].path, " -> ")
			if !ok {
				t.Fatalf("unsquashfs -lln: symlink without a target: %q", es[i].path)
			}
			es[i].path, es[i].link = p, target
		}
	}
	return es
}

// modeBits turns a mode string into the octal permission bits JSON shows.
func modeBits(s string) string {
	var v uint32
	for i, c := range s[1:] {
		bit := uint32(1) << (8 - i)
		switch c {
		case 'r', 'w', 'x':
			v |= bit
		case 's', 't':
			v |= bit
			fallthrough
		case 'S', 'T':
			v |= map[int]uint32{2: 0o4000, 5: 0o2000, 8: 0o1000}[i]
		}
	}
	return fmt.Sprintf("%04o", v)
}

// asJSON is s as a JSON string decodes: each byte that is not UTF-8 is
// U+FFFD.
func asJSON(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// checkLsOracle holds `parker ls`, `-l` and `--json` of file to
// unsquashfs's listing, and its hard links to the inodes of the source
// tree src.
func checkLsOracle(t *testing.T, file, src string) {
	off := strings.TrimSpace(runFile(t, file, []string{"--parker-offset"}).Stdout)
	want := unsquashfsLong(t, file, off)
	// unsquashfs 4.5.1 lists a device number in the old 16-bit encoding
	// (300,70000 as 1118508,112); the source tree says what it is.
	for i, w := range want {
		if w.mode[0] == 'c' || w.mode[0] == 'b' {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(src, w.path), &st); err != nil {
				t.Fatal(err)
			}
			want[i].size = fmt.Sprintf("%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
	}
	r := runParker(t, "", nil, "ls", "-l", file)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("parker ls -l: exit %d %q", r.Code, r.Stderr)
	}
	got := parseOurLong(t, r.Stdout)
	if len(got) != len(want) {
		t.Errorf("parker ls -l lists %d entries, unsquashfs %d", len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		g, w := got[i], want[i]
		g.hardlink = ""
		if g != w {
			t.Errorf("entry %d:\nparker ls -l %+q\nunsquashfs   %+q", i, g, w)
		}
	}

	// The plain listing: the same paths, one a line, directories marked.
	r = runParker(t, "", nil, "ls", file)
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	if r.Code != 0 || r.Stderr != "" || len(lines) != len(want) {
		t.Fatalf("parker ls: exit %d %q, %d lines for %d entries", r.Code, r.Stderr, len(lines), len(want))
	}
	for i, l := range lines {
		p := want[i].path
		if want[i].mode[0] == 'd' {
			p += "/"
			if p == "/" {
				p = "./"
			}
		}
		if unescapeName(t, l) != p {
			t.Errorf("parker ls line %d: %q, unsquashfs %q", i, l, p)
		}
	}

	// JSON: the same entries, fields typed.
	r = runParker(t, "", nil, "ls", "--json", file)
	var js []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &js); err != nil || r.Code != 0 || len(js) != len(want) {
		t.Fatalf("parker ls --json: exit %d, %v, %d entries for %d", r.Code, err, len(js), len(want))
	}
	types := map[byte]string{'d': "dir", '-': "file", 'l': "symlink", 'c': "char", 'b': "block", 'p': "fifo", 's': "socket"}
	for i, e := range js {
		w := want[i]
		p := w.path
		if p == "" {
			p = "."
		}
		size := w.size
		if maj, min, dev := strings.Cut(w.size, ","); dev {
			size = "0"
			if fmt.Sprint(e["major"]) != maj || fmt.Sprint(e["minor"]) != min {
				t.Errorf("JSON %q: device %v,%v, unsquashfs %s", p, e["major"], e["minor"], w.size)
			}
		}
		mt, _ := e["mtime"].(float64)
		for k, v := range map[string]string{"path": asJSON(p), "type": types[w.mode[0]], "mode": modeBits(w.mode),
			"uid": w.uid, "gid": w.gid, "size": size, "mtime": w.mtime, "link": asJSON(w.link), "hardlink": asJSON(got[i].hardlink)} {
			g := e[k]
			switch k {
			case "mtime":
				g = unixUTC(int64(mt))
			case "link", "hardlink":
				if g == nil {
					g = ""
				}
			}
			if f, ok := g.(float64); ok {
				g = strconv.FormatFloat(f, 'f', -1, 64)
			}
			if g != v {
				t.Errorf("JSON %q: %s = %v, want %q", p, k, g, v)
			}
		}
	}

	// Hard links: each later name of a source inode says which name came
	// first; no other entry says anything.
	first := map[uint64]string{}
	for _, e := range got {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, e.path), &st); err != nil {
			t.Fatal(err)
		}
		want := ""
		if e.mode[0] != 'd' && st.Nlink > 1 {
			if f, ok := first[st.Ino]; ok {
				want = f
			} else {
				first[st.Ino] = e.path
			}
		}
		if e.hardlink != want {
			t.Errorf("%q: hard link to %q, want %q", e.path, e.hardlink, want)
		}
	}
}

func unixUTC(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04") }

// TestLsOracle: parker ls against unsquashfs, on a tree of every kind of
// entry and on the generated small tree with its owners kept.
func TestLsOracle(t *testing.T) {
	t.Run("kinds", func(t *testing.T) {
		f, src := lsPacked(t)
		checkLsOracle(t, f, src)
		// Names that need it are escaped; the others are as they are.
		r := runParker(t, "", nil, "ls", f)
		for _, line := range []string{`new\nline`, `tab\there`, `back\\slash`, `bad-\377\376`, "arrow -> name", "héllo", "with space", "empty/", "dir/sym"} {
			if !strings.Contains(r.Stdout, "\n"+line+"\n") {
				t.Errorf("parker ls: no line %q", line)
			}
		}
		// The tree holds what the oracle is to judge.
		r = runParker(t, "", nil, "ls", "-l", f)
		kinds := []string{"-rwsr-xr-x 0/0 ", "drwxrwxrwt 0/0 ", "prw------- ", "lrwxrwxrwx ", " dir/hard link to dir/file\n"}
		if os.Geteuid() == 0 {
			kinds = append(kinds, "crw-rw-rw- 0/0             1,3 ", "brw-rw---- 0/0           7,200 ", "-rw-r----- 1000/4000000000 ")
		}
		for _, k := range kinds {
			if !strings.Contains(r.Stdout, k) {
				t.Errorf("parker ls -l: no %q", k)
			}
		}
	})
	t.Run("small", func(t *testing.T) {
		fx := smallTree(t)
		checkLsOracle(t, pack(t, fx.Dir, fx.Target, "-q", "--keep-owner"), fx.Dir)
	})
}

// lsDamaged packs a tree, uncompressed, and breaks the name of its last
// entry in the payload: the listing stops there. It returns the damaged
// file and the listing of the intact one up to the broken entry.
func lsDamaged(t *testing.T) (file, before string) {
	t.Helper()
	wd := tempDir(t, "lsdamaged")
	os.WriteFile(filepath.Join(wd, "app"), []byte("#!/bin/sh\n"), 0o755)
	os.Mkdir(filepath.Join(wd, "zz"), 0o755)
	os.WriteFile(filepath.Join(wd, "zz", "a-ok"), nil, 0o644)
	os.WriteFile(filepath.Join(wd, "zz", "broken-name"), nil, 0o644)
	f := pack(t, wd, "app", "-q", "--compression", "none")
	r := runParker(t, "", nil, "ls", f)
	if r.Code != 0 || !strings.HasSuffix(r.Stdout, "zz/a-ok\nzz/broken-name\n") {
		t.Fatalf("parker ls of the intact file: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	_, _, payload, tr := packedParts(t, f)
	i := bytes.Index(payload, []byte("broken-name"))
	if i < 0 || bytes.Count(payload, []byte("broken-name")) != 1 {
		t.Fatalf("the name is not once in the uncompressed payload")
	}
	b := readFile(t, f)
	b[int(tr.Offset)+i+len("broken")] = '/' // "broken/name": no directory may hold that
	if err := os.WriteFile(f, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return f, strings.TrimSuffix(r.Stdout, "zz/broken-name\n")
}

// pipeHead runs cmd with its stdout a pipe, reads the first line, closes
// the pipe and waits: as `cmd | head -1` does.
func pipeHead(t *testing.T, cmd *exec.Cmd) (first, stderr string, ws syscall.WaitStatus) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var se bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	first, _ = bufio.NewReader(pr).ReadString('\n')
	pr.Close()
	cmd.Wait()
	return first, se.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// quietEnd: a listing whose reader went away ends without a word, by
// SIGPIPE (or, were it ignored, with 1 or 125).
func quietEnd(t *testing.T, what, first, stderr string, ws syscall.WaitStatus, code int) {
	t.Helper()
	if !strings.HasSuffix(first, " ./\n") || stderr != "" || !(ws.Signaled() && ws.Signal() == syscall.SIGPIPE || ws.ExitStatus() == code) {
		t.Errorf("%s | head -1: first line %q, stderr %q, status %v", what, first, stderr, ws)
	}
}

func TestLsErrors(t *testing.T) {
	f, _ := lsPacked(t)
	// A reader that goes away: no panic, no message.
	r := runParker(t, "", nil, "ls", "-l", f)
	if len(r.Stdout) < 256<<10 {
		t.Fatalf("parker ls -l: %d bytes, too few to fill a pipe", len(r.Stdout))
	}
	first, stderr, ws := pipeHead(t, exec.Command(buildParker(t), "ls", "-l", f))
	quietEnd(t, "parker ls -l", first, stderr, ws, 1)
	// A write that fails otherwise: one line.
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	cmd := exec.Command(buildParker(t), "ls", f)
	var se bytes.Buffer
	cmd.Stdout, cmd.Stderr = full, &se
	cmd.Run()
	if want := "parker: ls " + f + ": cannot write the listing: no space left on device\n"; cmd.ProcessState.ExitCode() != 1 || se.String() != want {
		t.Errorf("parker ls > /dev/full: exit %d %q, want 1 %q", cmd.ProcessState.ExitCode(), se.String(), want)
	}

	// Damaged part way: what could be listed, then one line, exit 1.
	bad, before := lsDamaged(t)
	r = runParker(t, "", nil, "ls", bad)
	if want := "parker: ls " + bad + ": the image could not be read: "; r.Code != 1 || r.Stdout != before ||
		!strings.HasPrefix(r.Stderr, want) || !strings.Contains(r.Stderr, `"broken/name"`) || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("parker ls of a damaged image: exit %d\nstdout %q\nstderr %q\nwant 1, %q, %q...", r.Code, r.Stdout, r.Stderr, before, want)
	}
	r = runParker(t, "", nil, "ls", "--json", bad)
	var js []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &js); err != nil || r.Code != 1 || js[len(js)-1]["path"] != "zz/a-ok" {
		t.Errorf("parker ls --json of a damaged image: exit %d, %v\n%s", r.Code, err, r.Stdout)
	}

	// Not a packed file, a damaged trailer, no payload: one line, exit 1.
	trunc := filepath.Join(tempDir(t, "lstrunc"), "appd")
	b := readFile(t, f)
	os.WriteFile(trunc, b[:len(b)-1], 0o755)
	zeroed := filepath.Join(tempDir(t, "lszero"), "appd")
	_, _, _, tr := packedParts(t, f)
	copy(b[tr.Offset:], make([]byte, 4096))
	os.WriteFile(zeroed, b, 0o755)
	for _, tc := range []struct{ file, want string }{
		{"/etc/passwd", "parker: ls /etc/passwd: not a packed file (no parker trailer)\n"},
		{"/nonexistent", "parker: ls /nonexistent: no such file or directory\n"},
		{"/", "parker: ls /: not a regular file\n"},
		{trunc, "parker: ls " + trunc + ": " + cutShort + "\n"},
		{zeroed, "parker: ls " + zeroed + ": the image could not be read: image: corrupt or unsupported squashfs image: bad magic 0x0\n"},
	} {
		r := runParker(t, "", nil, "ls", tc.file)
		if r.Code != 1 || r.Stdout != "" || r.Stderr != tc.want {
			t.Errorf("parker ls %s: exit %d %q %q, want 1 and %q", tc.file, r.Code, r.Stdout, r.Stderr, tc.want)
		}
	}
	if r := runParker(t, "", nil, "ls", "-l"); r.Code != 2 || !strings.HasPrefix(r.Stderr, "parker: ls: missing FILE\n") {
		t.Errorf("parker ls without FILE: exit %d %q", r.Code, r.Stderr)
	}
}

// TestRunLsFlag: --parker-ls prints what parker ls prints, byte for byte,
// whichever stub starts it (make test runs it on the Go stub too); it
// needs no privileges.
func TestRunLsFlag(t *testing.T) {
	f, _ := lsPacked(t)
	fx := smallTree(t)
	small := pack(t, fx.Dir, fx.Target, "-q", "--keep-owner")
	for _, file := range []string{f, small} {
		for _, flags := range [][]string{nil, {"-l"}, {"--json"}, {"-l", "--json"}, {"--json", "-l"}} {
			want := runParker(t, "", nil, append(append([]string{"ls"}, flags...), file)...)
			got := runFile(t, file, append([]string{"--parker-ls"}, flags...))
			if want.Code != 0 || got.Code != 0 || got.Stderr != "" || got.Stdout != want.Stdout {
				t.Errorf("%s --parker-ls %q: exit %d %q; parker ls: exit %d; stdout equal: %v",
					file, flags, got.Code, got.Stderr, want.Code, got.Stdout == want.Stdout)
			}
		}
	}
	if os.Geteuid() == 0 {
		needTool(t, "setpriv")
		openToOthers(t, f)
		out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", f, "--parker-ls").Output()
		if want := runParker(t, "", nil, "ls", f); err != nil || string(out) != want.Stdout {
			t.Errorf("--parker-ls as nobody: %v", err)
		}
	}
	// Arguments after it are refused, not dropped.
	for _, args := range [][]string{{"--parker-ls", "extra"}, {"--parker-ls", "-l", "x"}, {"--parker-ls", "-l", "-l"}, {"--parker-ls", "--", "x"}} {
		r := runFile(t, f, args)
		if r.Code != 125 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "after --parker-ls") {
			t.Errorf("%q: exit %d %q %q", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	// The reader goes away: quiet.
	first, stderr, ws := pipeHead(t, exec.Command(f, "--parker-ls", "-l"))
	quietEnd(t, "--parker-ls -l", first, stderr, ws, 125)

	// Damaged part way: the same lines as parker ls, then one line, 125.
	bad, before := lsDamaged(t)
	r := runFile(t, bad, []string{"--parker-ls"})
	if want := "parker: " + bad + ": the image could not be read: "; r.Code != 125 || r.Stdout != before ||
		!strings.HasPrefix(r.Stderr, want) || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("--parker-ls of a damaged image: exit %d\nstdout %q\nstderr %q\nwant 125, %q, %q...", r.Code, r.Stdout, r.Stderr, before, want)
	}
	// With --parker-verify the damage is found first, and nothing listed.
	r = runFile(t, bad, []string{"--parker-verify", "--parker-ls"})
	if r.Code != 125 || r.Stdout != "" || !strings.Contains(r.Stderr, "digest mismatch") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("--parker-verify --parker-ls of a damaged image: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := runFile(t, f, []string{"--parker-help"}); !strings.Contains(r.Stdout, "--parker-ls [-l] [--json]") {
		t.Errorf("--parker-help does not name --parker-ls:\n%s", r.Stdout)
	}
}
