// Command lz4block packs a file as one LZ4 block, the form in which parker
// embeds the helper (hack/build.sh): its unpacked size as 8 bytes,
// little-endian, its SHA-256 (32 bytes: what a packed file's trailer
// records, the name of the cache's copy of it), then the block: about half
// the size. A packed file
// unpacks it into a memory file only when it hands a run to the helper
// (every --parker-* flag, PARKER_VERBOSE=1, every failure before the target
// starts), never on a plain run: the C stub with its own decoder
// (stub/cstub/lz4.c), the Go stub with github.com/pierrec/lz4/v4's
// UncompressBlock. Both refuse a block that would write out of bounds.
//
// Usage: go run ./hack/lz4block IN OUT
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/pierrec/lz4/v4"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: lz4block IN OUT")
		os.Exit(2)
	}
	if err := pack(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "lz4block:", err)
		os.Exit(1)
	}
}

func pack(in, out string) error {
	src, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	const header = 8 + sha256.Size
	dst := make([]byte, header+lz4.CompressBlockBound(len(src)))
	binary.LittleEndian.PutUint64(dst, uint64(len(src)))
	sum := sha256.Sum256(src)
	copy(dst[8:], sum[:])
	n, err := lz4.CompressBlockHC(src, dst[header:], lz4.Level1, nil, nil)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s does not compress", in)
	}
	// Check the round trip here rather than in every packed file.
	back := make([]byte, len(src))
	if m, err := lz4.UncompressBlock(dst[header:header+n], back); err != nil || m != len(src) || string(back) != string(src) {
		return fmt.Errorf("%s: the block does not unpack to the input (%d bytes, %v)", in, m, err)
	}
	return os.WriteFile(out, dst[:header+n], 0o644)
}
