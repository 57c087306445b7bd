//go:build parker_embed

package main

import _ "embed"

// The lean run-time stub and the helper, built by make (hack/build.sh) into
// stubs/ before parker itself.
var (
	//go:embed stubs/parker-stub
	embeddedStub []byte
	//go:embed stubs/parker-helper
	embeddedHelper []byte
)
