package image

import (
	"testing"

	"github.com/parkerpack/parker/internal/testenv"
)

// needRoot skips a test that needs root, unless on CI (CI set), which runs
// as root: there a skip would hide a failure, so it fails instead.
func needRoot(t *testing.T, what string) { testenv.NeedRoot(t, what) }
