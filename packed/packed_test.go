package packed

import (
	"encoding/json"
	"testing"
)

// TestInfoJSON checks the hand-written encoder against encoding/json: the
// output must parse and carry the documented keys and values.
func TestInfoJSON(t *testing.T) {
	in := &Info{File: "a\"b\\c\n\x01\xff", Target: "bin/\xfepy", Offset: 4096, Size: 8192,
		Digest: "sha256:00", Compression: "zstd", Level: -1, BlockSize: 131072, CreatedBy: "parker x\u2028",
		HaveImage: true, Inodes: 7, ModTime: 12, Verified: true, DigestOK: true}
	var m map[string]any
	if err := json.Unmarshal(in.JSON(), &m); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, in.JSON())
	}
	for k, want := range map[string]any{
		"file": "a\"b\\c\n\x01\ufffd", "target": "bin/\ufffdpy", "offset": 4096.0, "size": 8192.0,
		"digest": "sha256:00", "compression": "zstd", "level": -1.0, "block_size": 131072.0,
		"files": 7.0, "created_by": "parker x\u2028", "format_version": 0.0, "digest_ok": true,
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	in.HaveImage = false
	if err := json.Unmarshal(in.JSON(), &m); err != nil || m["files"] != nil {
		t.Errorf("without image: files = %v, err %v", m["files"], err)
	}
}
