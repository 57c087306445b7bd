//go:build parker_embed

package main

import _ "embed"

// The run-time stub (C, or Go without a C compiler) and the helper, built
// by make (hack/build.sh) into
// stubs/ before parker itself; the helper as hack/lz4block writes it (its
// unpacked size, 8 bytes little-endian, its SHA-256, then one LZ4 block).
var (
	//go:embed stubs/parker-stub
	embeddedStub []byte
	//go:embed stubs/parker-helper.lz4
	embeddedHelper []byte
)
