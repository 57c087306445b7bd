package tests

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/pierrec/lz4/v4"
)

// goStubRun: the tests run against a parker that embeds the Go stub
// (make test runs the run tests a second time that way: PARKER_BIN with
// PARKER_TEST_STUB=go); otherwise against the C stub, as make builds it.
func goStubRun() bool { return os.Getenv("PARKER_TEST_STUB") == "go" }

// packedParts splits a packed file into its stub, helper (as stored),
// payload and trailer.
func packedParts(t *testing.T, f string) (stub, helper, payload []byte, tr *trailer.Trailer) {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	tr, err = trailer.Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return b[:tr.StubSize], b[tr.HelperOffset : tr.HelperOffset+tr.HelperSize], b[tr.Offset : tr.Offset+tr.Size], tr
}

// TestStubKind: make embeds the C stub, a small static executable with no
// Go runtime in it (or the Go stub when asked for).
func TestStubKind(t *testing.T) {
	stub, _, _, tr := packedParts(t, toolPacked(t))
	e, err := elf.NewFile(bytes.NewReader(stub))
	if err != nil {
		t.Fatalf("stub is not an ELF file: %v", err)
	}
	if p := e.Progs; len(p) == 0 {
		t.Fatal("stub has no program headers")
	}
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("stub is dynamically linked")
		}
	}
	isGo := e.Section(".go.buildinfo") != nil
	if goStubRun() {
		if !isGo {
			t.Error("PARKER_TEST_STUB=go, but the stub is not the Go one")
		}
		return
	}
	if isGo || tr.StubSize > 64<<10 {
		t.Errorf("stub of %d bytes (Go: %v), want the C stub (stub/cstub), under 64 KiB", tr.StubSize, isGo)
	}
	if tr.HelperSize == 0 {
		t.Error("the C stub needs a helper, and the file carries none")
	}
}

// rawTrailer encodes a trailer body as given, valid or not, with a correct
// footer (length, CRC-32C, magic): what trailer.MarshalBinary would refuse
// to write, for the stub to refuse to run.
type rawTrailer struct {
	version, flags                      uint16
	stubSize, offset, size              uint64
	target, compression, createdBy      string
	helperOffset, helperSize, helperRaw uint64
	memory, pids                        uint64 // version 3's limits
	milliCPUs                           uint32
	helperDigest                        [32]byte       // version 4's
	noHelperFields                      bool           // a version-2 body cut short
	noLimitFields                       bool           // a version-3 body cut short
	noDigestField                       bool           // a version-4 body cut short
	needs                               []trailer.Need // version 5's
	needsCount                          int            // overrides len(needs) in the body
	needsCut                            bool           // a version-5 body cut short in its last library
	bodyLen                             int            // overrides the length in the footer
	badCRC                              bool
}

// layout lays stub, helper and payload out as parker does (trailer.Plan)
// and returns the bytes before the trailer, with a good trailer for them
// (helperRaw: the helper's unpacked size).
func layout(stub, helper, payload []byte, target string, helperRaw uint64) (rawTrailer, []byte) {
	l := trailer.Plan(int64(len(stub)), int64(len(helper)))
	b := make([]byte, l.Offset, l.Offset+int64(len(payload)))
	copy(b, stub)
	copy(b[l.HelperOffset:], helper)
	b = append(b, payload...)
	return rawTrailer{version: 4, stubSize: uint64(l.StubSize), offset: uint64(l.Offset), size: uint64(len(payload)),
		target: target, compression: "zstd", createdBy: "parker test",
		helperOffset: uint64(l.HelperOffset), helperSize: uint64(l.HelperSize), helperRaw: helperRaw}, b
}

// sampleNeeds are libraries a version-5 trailer names.
var sampleNeeds = []trailer.Need{
	{Flags: 0x303, Soname: "libz.so.1", Path: "/lib/x86_64-linux-gnu/libz.so.1"},
	{Flags: 0x303, Soname: "libm.so.6", Path: "/usr/lib/x86_64-linux-gnu/libm.so.6"},
}

// sampleTrailer is a good trailer for the checkers, which read a trailer
// alone: a one-block payload right after a stub and a helper.
func sampleTrailer() rawTrailer {
	return rawTrailer{version: 4, stubSize: 100, offset: trailer.PadSize, size: trailer.PadSize, target: "bin/tool",
		compression: "zstd", createdBy: "parker test", helperOffset: 100, helperSize: 3000, helperRaw: 6000,
		memory: 100 << 20, milliCPUs: 500, pids: 50, helperDigest: [32]byte{0: 0xab, 31: 0xcd}}
}

func (r rawTrailer) bytes() []byte {
	le := binary.LittleEndian
	var b []byte
	b = le.AppendUint16(b, r.version)
	b = le.AppendUint16(b, r.flags)
	b = le.AppendUint64(b, r.stubSize)
	b = le.AppendUint64(b, r.offset)
	b = le.AppendUint64(b, r.size)
	b = append(b, make([]byte, 32)...) // digest
	b = le.AppendUint32(b, 3)          // level
	b = le.AppendUint32(b, 131072)     // block size
	for _, s := range []string{r.target, r.compression, r.createdBy} {
		b = le.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	if !r.noHelperFields {
		b = le.AppendUint64(b, r.helperOffset)
		b = le.AppendUint64(b, r.helperSize)
		b = le.AppendUint64(b, r.helperRaw)
	}
	if r.version >= 3 && !r.noLimitFields && !r.noHelperFields {
		b = le.AppendUint64(b, r.memory)
		b = le.AppendUint32(b, r.milliCPUs)
		b = le.AppendUint64(b, r.pids)
	}
	if r.version >= 4 && !r.noDigestField && !r.noLimitFields && !r.noHelperFields {
		b = append(b, r.helperDigest[:]...)
		if r.version >= 5 {
			count := len(r.needs)
			if r.needsCount != 0 {
				count = r.needsCount
			}
			b = le.AppendUint16(b, uint16(count))
			for _, d := range r.needs {
				b = le.AppendUint32(b, d.Flags)
				for _, s := range []string{d.Soname, d.Path} {
					b = le.AppendUint16(b, uint16(len(s)))
					b = append(b, s...)
				}
			}
			if r.needsCut {
				b = b[:len(b)-1]
			}
		}
	}
	n := uint32(len(b))
	if r.bodyLen != 0 {
		n = uint32(r.bodyLen)
	}
	b = le.AppendUint32(b, n)
	crc := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	if r.badCRC {
		crc ^= 1
	}
	b = le.AppendUint32(b, crc)
	return append(b, trailer.Magic...)
}

// hostileTrailers turn a good trailer into one that must be refused.
var hostileTrailers = []struct {
	name string
	mod  func(r *rawTrailer)
}{
	{"version 0", func(r *rawTrailer) { r.version = 0 }},
	{"version 6", func(r *rawTrailer) { r.version = 6 }},
	{"libraries cut short", func(r *rawTrailer) { r.version, r.needs, r.needsCut = 5, sampleNeeds, true }},
	{"more libraries than it holds", func(r *rawTrailer) { r.version, r.needs, r.needsCount = 5, sampleNeeds, 3 }},
	{"a library by a relative path", func(r *rawTrailer) {
		r.version, r.needs = 5, []trailer.Need{{Flags: 0x303, Soname: "libz.so.1", Path: "lib/libz.so.1"}}
	}},
	{"a soname with a slash", func(r *rawTrailer) {
		r.version, r.needs = 5, []trailer.Need{{Flags: 0x303, Soname: "../libz.so.1", Path: "/lib/libz.so.1"}}
	}},
	{"an empty soname", func(r *rawTrailer) {
		r.version, r.needs = 5, []trailer.Need{{Flags: 0x303, Soname: "", Path: "/lib/libz.so.1"}}
	}},
	{"a NUL in a library's path", func(r *rawTrailer) {
		r.version, r.needs = 5, []trailer.Need{{Flags: 0x303, Soname: "libz.so.1", Path: "/lib/\x00libz.so.1"}}
	}},
	{"libraries past their bytes", func(r *rawTrailer) {
		r.version = 5
		for i := range 20 {
			r.needs = append(r.needs, trailer.Need{Flags: 0x303, Soname: fmt.Sprintf("lib%d.so", i), Path: "/" + strings.Repeat("d", 1000)})
		}
	}},
	{"too many libraries", func(r *rawTrailer) {
		r.version = 5
		for i := range trailer.MaxNeeds + 1 {
			r.needs = append(r.needs, trailer.Need{Flags: 0x303, Soname: fmt.Sprintf("lib%d.so", i), Path: "/l"})
		}
	}},
	{"empty target", func(r *rawTrailer) { r.target = "" }},
	{"huge target", func(r *rawTrailer) { r.target = strings.Repeat("a", 5000) }},
	{"NUL in target", func(r *rawTrailer) { r.target = "to\x00ol" }},
	{"huge compression name", func(r *rawTrailer) { r.compression = strings.Repeat("z", 2000) }},
	{"unaligned offset", func(r *rawTrailer) { r.offset++ }},
	{"stub past payload", func(r *rawTrailer) { r.stubSize = r.offset + trailer.PadSize }},
	{"empty payload", func(r *rawTrailer) { r.size = 0 }},
	{"payload past trailer", func(r *rawTrailer) { r.size += 8192 }},
	{"payload wraps around", func(r *rawTrailer) { r.size = ^uint64(0) - 100 }},
	{"helper inside stub", func(r *rawTrailer) { r.helperOffset = 0 }},
	{"helper past payload", func(r *rawTrailer) { r.helperSize = r.offset }},
	{"helper wraps around", func(r *rawTrailer) { r.helperSize = ^uint64(0) - 10 }},
	{"helper unpacks too big", func(r *rawTrailer) { r.helperRaw = 1 << 40 }},
	{"body cut short", func(r *rawTrailer) { r.noHelperFields = true }},
	{"limits cut short", func(r *rawTrailer) { r.noLimitFields = true }},
	{"helper digest cut short", func(r *rawTrailer) { r.noDigestField = true }},
	{"helper digest without a helper", func(r *rawTrailer) {
		r.helperOffset, r.helperSize, r.helperRaw, r.helperDigest = 0, 0, 0, [32]byte{1}
	}},
	{"memory limit past int64", func(r *rawTrailer) { r.memory = 1 << 63 }},
	{"CPU limit past 65536", func(r *rawTrailer) { r.milliCPUs = 65536001 }},
	{"process limit past the kernel's", func(r *rawTrailer) { r.pids = 1<<22 + 1 }},
	{"body length huge", func(r *rawTrailer) { r.bodyLen = 1 << 30 }},
	{"body length wrong", func(r *rawTrailer) { r.bodyLen = 60 << 10 }},
	{"checksum", func(r *rawTrailer) { r.badCRC = true }},
}

// TestStubHostileTrailer: a trailer whose checksum holds but whose fields
// do not (a damaged or hostile file) gets one line and 125 from the stub,
// never a crash, a mount or a run.
func TestStubHostileTrailer(t *testing.T) {
	needRoot(t, "running a packed file")
	stub, helper, payload, tr := packedParts(t, toolPacked(t))
	good, head := layout(stub, helper, payload, tr.Target, tr.HelperRawSize)
	file := func(r rawTrailer) []byte { return append(head[:len(head):len(head)], r.bytes()...) }
	dir := tempDir(t, "hostile")
	f := filepath.Join(dir, "toold")
	run := func(name string, data []byte, args ...string) runRes {
		t.Helper()
		if err := os.WriteFile(f, data, 0o755); err != nil {
			t.Fatal(err)
		}
		return runFile(t, f, args)
	}
	// The control: the same assembly with the good trailer runs.
	if r := run("good", file(good), "exit", "7"); r.Code != 7 {
		t.Fatalf("control: exit %d, stderr %q", r.Code, r.Stderr)
	}
	for _, tc := range hostileTrailers {
		r := good
		tc.mod(&r)
		res := run(tc.name, file(r), "exit", "0")
		if res.Code != 125 || res.Signal != 0 || strings.Count(res.Stderr, "\n") != 1 ||
			!strings.HasPrefix(res.Stderr, "parker: "+f+": ") || !strings.Contains(res.Stderr, "trailer") {
			t.Errorf("%s: exit %d signal %v, stderr %q; want 125 and one line about the trailer",
				tc.name, res.Code, res.Signal, res.Stderr)
		}
	}
	// No trailer at all: a stub runs only as a packed file, so its file
	// lost its end.
	if res := run("no trailer", head); res.Code != 125 ||
		strings.Count(res.Stderr, "\n") != 1 || !strings.Contains(res.Stderr, "truncated or damaged packed file") {
		t.Errorf("no trailer: exit %d, stderr %q", res.Code, res.Stderr)
	}
}

// TestStubDamagedHelper: the helper block is checked while it is unpacked;
// a damaged one gets one line and 125, never a crash or a half-unpacked
// program started.
func TestStubDamagedHelper(t *testing.T) {
	needRoot(t, "running a packed file")
	stub, helper, payload, tr := packedParts(t, toolPacked(t))
	if tr.HelperRawSize == 0 {
		t.Skip("the helper is stored unpacked")
	}
	dir := tempDir(t, "badhelper")
	f := filepath.Join(dir, "toold")
	try := func(name string, h []byte, raw uint64) {
		t.Helper()
		good, b := layout(stub, h, payload, tr.Target, raw)
		os.WriteFile(f, append(b, good.bytes()...), 0o755)
		r := runFile(t, f, []string{"--parker-offset"})
		if r.Code != 125 || r.Signal != 0 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "helper") {
			t.Errorf("%s: exit %d signal %v, stderr %q; want 125 and one line about the helper", name, r.Code, r.Signal, r.Stderr)
		}
	}
	if goStubRun() {
		// The Go stub handles --parker-offset itself; --parker-info goes
		// to the helper. (The C stub hands every flag to the helper.)
		t.Log("Go stub: damaged helpers are covered by TestRunHelper")
		return
	}
	try("claims more bytes than it unpacks to", helper, tr.HelperRawSize+1)
	try("claims fewer bytes", helper, tr.HelperRawSize-1)
	try("cut short", helper[:len(helper)/2], tr.HelperRawSize)
	// A match reaching back before the start of the output.
	try("match before the start", []byte{0x10, 'x', 0xff, 0x00, 0x00}, 64)
	// A literal run longer than the block.
	try("literals past the end", []byte{0xf0, 0xff, 0xff, 0x10}, 64)
	// A zero offset.
	try("zero offset", []byte{0x10, 'x', 0x00, 0x00, 0x10, 'y'}, 64)
}

var (
	checkerMu   sync.Mutex
	checkerBins = map[string]string{}
)

// hostCC is the C compiler for this machine: $CC, or cc.
func hostCC() string {
	if cc := os.Getenv("CC"); cc != "" {
		return cc
	}
	return "cc"
}

// stubChecker builds a part of the C stub alone (stub/cstub/check.c) with
// -D<define> (PARKER_TRAILER_CHECK: its trailer reader; PARKER_LZ4_CHECK:
// its LZ4 block decoder), for this machine.
func stubChecker(t testing.TB, define string) string {
	return buildCStub(t, "check.c", define, hostCC())
}

// buildCStub builds src, a file of stub/cstub, with the stub's flags,
// -D<define>, the C compiler cc and extra flags, once per test binary.
func buildCStub(t testing.TB, src, define, cc string, extra ...string) string {
	t.Helper()
	checkerMu.Lock()
	defer checkerMu.Unlock()
	key := strings.Join(append([]string{src, define, cc}, extra...), " ")
	if bin := checkerBins[key]; bin != "" {
		return bin
	}
	b, err := os.ReadFile("../stub/cstub/CFLAGS")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			args = append(args, strings.Fields(l)...)
		}
	}
	bin := filepath.Join(tempDir(t, "checker"), strings.ToLower(define))
	args = append(append(args, extra...), "-D"+define, "-o", bin, filepath.Join("../stub/cstub", src))
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}
	checkerBins[key] = bin
	return bin
}

// runChecker writes data to file, runs checker on it with args, removes the
// file and returns the checker's output and exit status (-1 when it was
// killed by a signal: a crash).
func runChecker(t *testing.T, checker, file string, data []byte, args ...string) (so, se *bytes.Buffer, code int) {
	t.Helper()
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(file)
	so, se = new(bytes.Buffer), new(bytes.Buffer)
	c := exec.Command(checker, append([]string{file}, args...)...)
	c.Stdout, c.Stderr = so, se
	c.Run()
	return so, se, c.ProcessState.ExitCode()
}

// FuzzStubTrailer: the C stub's trailer reader accepts exactly the
// trailers image/trailer accepts, and reads the same fields from them.
// The input is a trailer body; fix appends the footer (length, CRC-32C,
// magic) so that the fields themselves get exercised, pad puts that many
// 16-byte blocks of zeros before it.
func FuzzStubTrailer(f *testing.F) {
	checker := stubChecker(f, "PARKER_TRAILER_CHECK")
	good := sampleTrailer().bytes()
	body := good[:len(good)-trailer.FooterSize]
	f.Add(body, uint16(520), true)
	f.Add(body, uint16(10), true)
	f.Add(good, uint16(520), false)
	for _, h := range hostileTrailers {
		r := sampleTrailer()
		h.mod(&r)
		b := r.bytes()
		if r.bodyLen != 0 || r.badCRC {
			f.Add(b, uint16(520), false) // the footer is the case
		} else {
			f.Add(b[:len(b)-trailer.FooterSize], uint16(520), true)
		}
	}
	v1 := rawTrailer{version: 1, stubSize: 10, offset: trailer.PadSize, size: trailer.PadSize, target: "t", noHelperFields: true}.bytes()
	f.Add(v1[:len(v1)-trailer.FooterSize], uint16(600), true)
	v2 := sampleTrailer()
	v2.version = 2
	b2 := v2.bytes()
	f.Add(b2[:len(b2)-trailer.FooterSize], uint16(600), true)
	v5 := sampleTrailer()
	v5.version, v5.needs = 5, sampleNeeds
	b5 := v5.bytes()
	f.Add(b5[:len(b5)-trailer.FooterSize], uint16(600), true)
	v3 := sampleTrailer()
	v3.version, v3.helperDigest = 3, [32]byte{}
	b3 := v3.bytes()
	f.Add(b3[:len(b3)-trailer.FooterSize], uint16(600), true)
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, body []byte, pad uint16, fix bool) {
		data := make([]byte, int(pad)*16, int(pad)*16+len(body)+trailer.FooterSize)
		data = append(data, body...)
		if fix {
			le := binary.LittleEndian
			data = le.AppendUint32(data, uint32(len(body)))
			data = le.AppendUint32(data, crc32.Checksum(data[len(data)-len(body)-4:], crc32.MakeTable(crc32.Castagnoli)))
			data = append(data, trailer.Magic...)
		}
		n++
		so, se, code := runChecker(t, checker, filepath.Join(dir, fmt.Sprintf("f%d", n)), data)
		if code != 0 && code != 125 {
			t.Fatalf("C reader: exit %d, stderr %q", code, se.String())
		}
		tr, gerr := trailer.Read(bytes.NewReader(data), int64(len(data)))
		switch {
		case gerr != nil && code == 0:
			t.Fatalf("Go refuses (%v), C accepts: %q", gerr, so.String())
		case gerr == nil && code != 0:
			t.Fatalf("Go accepts %+v, C refuses: %q", tr, se.String())
		case gerr != nil:
			want := "damaged parker trailer"
			if errors.Is(gerr, trailer.ErrNoTrailer) {
				want = "truncated or damaged packed file"
			}
			if !strings.Contains(se.String(), want) || strings.Count(se.String(), "\n") != 1 {
				t.Fatalf("Go: %v; C: %q", gerr, se.String())
			}
		default:
			needs := fmt.Sprint(len(tr.Needs))
			for _, d := range tr.Needs {
				needs += fmt.Sprintf(" %d:%s:%s", d.Flags, d.Soname, d.Path)
			}
			want := fmt.Sprintf("%d %d %d %d %d %d %d %d %d %d %x %s %s\n", tr.Version, tr.StubSize, tr.Offset, tr.Size,
				tr.HelperOffset, tr.HelperSize, tr.HelperRawSize, tr.Limits.Memory, tr.Limits.MilliCPUs, tr.Limits.Pids,
				tr.HelperDigest, needs, tr.Target)
			if so.String() != want {
				t.Fatalf("C read %q, Go %q", so.String(), want)
			}
		}
	})
}

// FuzzStubLZ4: the C stub's LZ4 block decoder, which unpacks the helper,
// agrees with the Go one (github.com/pierrec/lz4, which hack/lz4block
// packs it with) on every block: both refuse it, or both unpack it to the
// same bytes; and it never crashes or writes past its buffer.
func FuzzStubLZ4(f *testing.F) {
	checker := stubChecker(f, "PARKER_LZ4_CHECK")
	for _, src := range [][]byte{
		[]byte("hello, hello, hello, hello, hello, world"),
		bytes.Repeat([]byte{0}, 5000),
		[]byte(strings.Repeat("abcdefgh", 300) + "tail of the block"),
	} {
		buf := make([]byte, lz4.CompressBlockBound(len(src)))
		n, err := lz4.CompressBlock(src, buf, nil)
		if err != nil || n == 0 {
			f.Fatalf("compress: %d %v", n, err)
		}
		f.Add(buf[:n], uint32(len(src)))
		f.Add(buf[:n], uint32(len(src)-1))
	}
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, block []byte, raw uint32) {
		raw %= 1 << 20
		n++
		so, se, code := runChecker(t, checker, filepath.Join(dir, fmt.Sprintf("b%d", n)), block, fmt.Sprint(raw))
		if code != 0 && code != 1 {
			t.Fatalf("C decoder: exit %d, stderr %q", code, se.String())
		}
		dst := make([]byte, raw)
		gn, gerr := lz4.UncompressBlock(block, dst)
		switch {
		case gerr == nil && code == 0:
			if !bytes.Equal(so.Bytes(), dst[:gn]) {
				t.Fatalf("C unpacked %d bytes, Go %d, and they differ", so.Len(), gn)
			}
		case gerr != nil && code != 0:
		case code == 0:
			t.Fatalf("Go refuses (%v), C unpacks %d bytes", gerr, so.Len())
		default:
			t.Fatalf("Go unpacks %d bytes, C refuses", gn)
		}
	})
}

// TestStubArm64: the C stub builds for arm64 (as GOARCH=arm64 make does,
// with aarch64-linux-gnu-gcc), and its trailer reader and LZ4 decoder,
// built for arm64 and run under qemu-user, read what the amd64 ones and Go
// read. (The mounts cannot be run there: qemu-user lacks the new mount
// API.) hack/deps.sh installs the cross compiler and qemu.
func TestStubArm64(t *testing.T) {
	needTool(t, "aarch64-linux-gnu-gcc")
	needTool(t, "qemu-aarch64-static")
	cc, _ := exec.LookPath("aarch64-linux-gnu-gcc")
	qemu, _ := exec.LookPath("qemu-aarch64-static")
	out := filepath.Join(tempDir(t, "arm64"), "parker")
	build := exec.Command("bash", "hack/build.sh", out)
	build.Dir = ".."
	build.Env = append(os.Environ(), "GO="+goTool(), "GOARCH=arm64", "STUB=c", "CC="+cc)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("GOARCH=arm64 hack/build.sh: %v\n%s", err, b)
	}
	// The stubs directory now holds arm64 programs: put this machine's
	// back, so that no later build embeds them by mistake.
	t.Cleanup(func() {
		rebuild := exec.Command("bash", "hack/build.sh", filepath.Join(t.TempDir(), "parker"))
		rebuild.Dir = ".."
		rebuild.Env = append(os.Environ(), "GO="+goTool(), "STUB=c")
		if b, err := rebuild.CombinedOutput(); err != nil {
			t.Errorf("rebuild for this machine: %v\n%s", err, b)
		}
	})
	stub, err := os.ReadFile("../cmd/parker/stubs/parker-stub")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := elf.NewFile(bytes.NewReader(stub)); err != nil || e.Machine != elf.EM_AARCH64 {
		t.Fatalf("arm64 stub: %v (machine %v)", err, e)
	}

	dir := t.TempDir()
	tc := buildCStub(t, "check.c", "PARKER_TRAILER_CHECK", cc, "-mno-outline-atomics")
	lc := buildCStub(t, "check.c", "PARKER_LZ4_CHECK", cc, "-mno-outline-atomics")
	host := stubChecker(t, "PARKER_TRAILER_CHECK")
	f := toolPacked(t)
	run := func(bin string, args ...string) (string, int) {
		c := exec.Command(qemu, append([]string{bin}, args...)...)
		var so, se bytes.Buffer
		c.Stdout, c.Stderr = &so, &se
		c.Run()
		return so.String() + se.String(), c.ProcessState.ExitCode()
	}
	hostRun := func(bin string, args ...string) (string, int) {
		c := exec.Command(bin, args...)
		var so, se bytes.Buffer
		c.Stdout, c.Stderr = &so, &se
		c.Run()
		return so.String() + se.String(), c.ProcessState.ExitCode()
	}
	got, code := run(tc, f)
	want, wcode := hostRun(host, f)
	if got != want || code != wcode || code != 0 {
		t.Errorf("arm64 trailer reader: %q (%d), amd64: %q (%d)", got, code, want, wcode)
	}
	for _, h := range hostileTrailers {
		r := sampleTrailer()
		h.mod(&r)
		p := filepath.Join(dir, "h")
		// The file is long enough for the sample's payload, which ends
		// before the trailer.
		os.WriteFile(p, append(make([]byte, 2*trailer.PadSize+128), r.bytes()...), 0o644)
		got, code := run(tc, p)
		want, wcode := hostRun(host, p)
		if got != want || code != wcode || code != 125 {
			t.Errorf("%s: arm64 trailer reader: %q (%d), amd64: %q (%d)", h.name, got, code, want, wcode)
		}
	}
	// The helper, unpacked by the arm64 decoder, is what Go unpacks.
	_, helper, _, tr := packedParts(t, f)
	p := filepath.Join(dir, "helper.lz4")
	os.WriteFile(p, helper, 0o644)
	c := exec.Command(qemu, lc, p, fmt.Sprint(tr.HelperRawSize))
	unpacked, err := c.Output()
	wantHelper := make([]byte, tr.HelperRawSize)
	n, gerr := lz4.UncompressBlock(helper, wantHelper)
	if err != nil || gerr != nil || !bytes.Equal(unpacked, wantHelper[:n]) || uint64(n) != tr.HelperRawSize {
		t.Errorf("arm64 LZ4 decoder: %d bytes (%v), Go: %d (%v)", len(unpacked), err, n, gerr)
	}
}

// TestStubLegacyKernel: the C stub's paths for kernels before 5.8 (no
// LOOP_CONFIGURE: LOOP_SET_FD and LOOP_SET_STATUS64) and before 6.5 (no
// "lowerdir+": one joined lowerdir option, escaped), forced on this kernel
// by a test build (-DPARKER_LEGACY_KERNEL), from a directory whose name
// needs that escaping. strace shows that the stub took those paths and did
// not hand the run to the helper (which would take the modern ones).
func TestStubLegacyKernel(t *testing.T) {
	needRoot(t, "running a packed file")
	if goStubRun() {
		t.Skip("the Go stub's legacy paths: go test -run TestLegacy ./mountns")
	}
	needTool(t, "strace")
	strace, _ := exec.LookPath("strace")
	legacy, err := os.ReadFile(buildCStub(t, "stub.c", "PARKER_LEGACY_KERNEL", hostCC()))
	if err != nil {
		t.Fatal(err)
	}
	src := packScript(t, "legacy", "#!/bin/sh\ncat \"$PARKER_ROOT/data.txt\"; exit 3\n", map[string]string{"data.txt": "from the image\n"})
	_, helper, payload, tr := packedParts(t, src)
	good, b := layout(legacy, helper, payload, tr.Target, tr.HelperRawSize)
	b = append(b, good.bytes()...)
	dir := filepath.Join(tempDir(t, "legacy"), `odd:dir,with\chars`)
	os.Mkdir(dir, 0o755)
	f := filepath.Join(dir, "legacyd")
	if err := os.WriteFile(f, b, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "strace")
	r := runFile(t, strace, []string{"-f", "-s", "4096", "-o", log, "-e", "trace=memfd_create,ioctl,fsconfig", f})
	if r.Code != 3 || r.Stdout != "from the image\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	st, _ := os.ReadFile(log)
	trace := string(st)
	for _, want := range []string{"LOOP_SET_FD", "LOOP_SET_STATUS64", `"lowerdir", "/proc/self/fd/`, `odd\\:dir\\,with\\\\chars`} {
		if !strings.Contains(trace, want) {
			t.Errorf("strace shows no %s:\n%s", want, trace)
		}
	}
	// The helper would be unpacked into a memory file ("parker-helper");
	// the sidecar's copy of the stub ("parker-sidecar") is expected.
	for _, bad := range []string{`memfd_create("parker-helper"`, "LOOP_CONFIGURE", "lowerdir+"} {
		if strings.Contains(trace, bad) {
			t.Errorf("strace shows %s: the legacy path was not the one taken:\n%s", bad, trace)
		}
	}
}
