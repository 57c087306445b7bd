//go:build !parker_embed

package main

// Built without the embedded stub and helper (plain go build or go
// install): parker writes its own executable as the stub.
var embeddedStub, embeddedHelper []byte
