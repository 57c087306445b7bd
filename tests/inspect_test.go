package tests

// `parker inspect --json`: the packed file described, its digest checked.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
)

func TestInspectJSON(t *testing.T) {
	fx := smallTree(t)
	out := pack(t, fx.Dir, fx.Target, "-q", "--compression", "gzip", "--level", "7", "--block-size", "64K")
	tr := checkPacked(t, out)
	r := runParker(t, "", nil, "inspect", "--json", out)
	if r.Code != 0 {
		t.Fatalf("inspect: exit %d: %s", r.Code, r.Stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &m); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r.Stdout)
	}
	for _, k := range []string{"format_version", "target", "offset", "size", "digest", "compression", "block_size", "files", "created_by"} {
		if _, ok := m[k]; !ok {
			t.Errorf("inspect --json lacks %q", k)
		}
	}
	f, _ := os.Open(out)
	defer f.Close()
	h := sha256.New()
	io.Copy(h, io.NewSectionReader(f, int64(tr.Offset), int64(tr.Size)))
	want := "sha256:" + hex.EncodeToString(h.Sum(nil))
	v, err := ourView(out, int64(tr.Offset), int64(tr.Size))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, e := range v.Entries {
		inodes[e.ID] = true
	}
	for k, w := range map[string]any{
		"format_version": float64(trailer.Version), "target": "run.sh",
		"offset": float64(tr.Offset), "size": float64(tr.Size), "digest": want,
		"compression": "gzip", "block_size": float64(64 << 10), "files": float64(len(inodes)),
	} {
		if m[k] != w {
			t.Errorf("inspect --json %s = %v, want %v", k, m[k], w)
		}
	}
	if s, _ := m["created_by"].(string); !strings.HasPrefix(s, "parker ") {
		t.Errorf("created_by %q", s)
	}
	// a damaged payload byte shows in the digest check
	bad := filepath.Join(tempDir(t, "bad"), "bad")
	b := readFile(t, out)
	b[tr.Offset+image.SuperblockSize+100] ^= 0xff
	os.WriteFile(bad, b, 0o755)
	r = runParker(t, "", nil, "inspect", "--json", bad)
	var mb map[string]any
	json.Unmarshal([]byte(r.Stdout), &mb)
	if ok, has := mb["digest_ok"].(bool); (has && ok) || (!has && r.Code == 0) {
		t.Errorf("inspect of a damaged payload: exit %d, digest_ok %v; want the damage reported", r.Code, mb["digest_ok"])
	}
	r = runParker(t, "", nil, "inspect", "--json", "/etc/passwd")
	wantFailure(t, "inspect of an unpacked file", r, 1, "")
}
