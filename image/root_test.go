package image

import (
	"os"
	"testing"
)

// needRoot skips a test that needs root, unless on CI (CI set), which runs
// as root: there a skip would hide a failure, so it fails instead.
func needRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("needs root: %s", what)
	}
	t.Skipf("SKIP (not root): %s", what)
}
