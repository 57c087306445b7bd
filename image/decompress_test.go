package image

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// TestXZCheck: the xz decompressor verifies the stream's integrity check,
// since squashfs itself has none, and rejects BCJ filter chains it cannot
// decode as ErrCompression.
func TestXZCheck(t *testing.T) {
	data := pseudoText(9, 20000)
	for _, check := range []byte{xz.None, xz.CRC32, xz.CRC64, xz.SHA256} {
		var b bytes.Buffer
		w, err := xz.WriterConfig{DictCap: 1 << 16, CheckSum: check}.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		stream := b.Bytes()
		d := xzDecompressor{}
		out, err := d.decompress(make([]byte, 0, 32<<10), stream, 32<<10)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("check %d: %v", check, err)
		}
		if _, err := d.decompress(make([]byte, 0, 1000), stream, 1000); !errors.Is(err, ErrFormat) {
			t.Errorf("check %d: small buffer: %v, want ErrFormat", check, err)
		}
		if check == xz.None {
			continue
		}
		// Any damage to the block is either caught or harmless: whatever
		// decodes without error is the original data. (The LZMA2 decoder
		// tolerates some chunk-size fields being off; the check still
		// covers the output.) The index and footer after the first block
		// are not read.
		_, hlen, _, _ := xzBlockData(stream)
		caught := 0
		for i := xzStreamHeader + hlen; i < len(stream); i += 1 + i%13 {
			bad := bytes.Clone(stream)
			bad[i] ^= 1
			got, err := d.decompress(make([]byte, 0, 32<<10), bad, 32<<10)
			if err != nil {
				caught++
				if !errors.Is(err, ErrFormat) {
					t.Errorf("check %d: flip at %d: %v", check, i, err)
				}
			} else if !bytes.Equal(got, data) {
				t.Errorf("check %d: flip at %d: wrong output, no error", check, i)
			}
		}
		if caught == 0 {
			t.Errorf("check %d: no damage detected", check)
		}
	}
}

// TestDecompressLimits: every decompressor refuses output beyond the
// buffer it is given, and zlib's checksum is verified even when the output
// exactly fills the buffer.
func TestDecompressLimits(t *testing.T) {
	data := pseudoText(11, 4096)
	var zb bytes.Buffer
	zw := zlib.NewWriter(&zb)
	zw.Write(data)
	zw.Close()
	zenc, _ := zstd.NewWriter(nil)
	lz := make([]byte, lz4.CompressBlockBound(len(data)))
	n, err := lz4.CompressBlock(data, lz, nil)
	if err != nil {
		t.Fatal(err)
	}
	lzOpts := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		id   uint16
		opts []byte
		enc  []byte
	}{
		{CompGzip, nil, zb.Bytes()},
		{CompZstd, nil, zenc.EncodeAll(data, nil)},
		{CompLZ4, lzOpts, lz[:n]},
	} {
		d, err := newDecompressor(tc.id, tc.opts, MaxBlockSize)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := d.decompress(make([]byte, 0, len(data)), tc.enc, len(data)); err != nil || !bytes.Equal(out, data) {
			t.Errorf("comp %d: exact buffer: %v", tc.id, err)
		}
		if out, err := d.decompress(decodeBuf(len(data)), tc.enc, len(data)); err != nil || !bytes.Equal(out, data) {
			t.Errorf("comp %d: buffer with slack: %v", tc.id, err)
		}
		if _, err := d.decompress(make([]byte, 0, len(data)-1), tc.enc, len(data)-1); !errors.Is(err, ErrFormat) {
			t.Errorf("comp %d: small buffer: %v, want ErrFormat", tc.id, err)
		}
		// The slack is room for the decoder, not for more output.
		if _, err := d.decompress(decodeBuf(len(data)-1), tc.enc, len(data)-1); !errors.Is(err, ErrFormat) {
			t.Errorf("comp %d: small limit, buffer with slack: %v, want ErrFormat", tc.id, err)
		}
	}
	bad := bytes.Clone(zb.Bytes())
	bad[len(bad)-1] ^= 1 // Adler-32
	d, _ := newDecompressor(CompGzip, nil, MaxBlockSize)
	for _, c := range []int{len(data), 2 * len(data)} {
		if _, err := d.decompress(make([]byte, 0, c), bad, c); !errors.Is(err, ErrFormat) {
			t.Errorf("zlib with a bad checksum, buffer %d: %v", c, err)
		}
	}
}
