// Package testenv is what the tests of several packages share about the
// machine they run on: a test that this machine cannot run is skipped,
// except on CI (CI set), which runs as root on a machine that has
// everything the tests need: there a skip would hide a failure, so the
// test fails instead.
package testenv

import (
	"fmt"
	"os"
	"sort"
	"testing"
)

// Unavailable skips t, saying why (format and args), or fails it on CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIP: " + msg)
}

// NeedRoot is Unavailable unless the test runs as root; what says what
// needs it.
func NeedRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "not root: %s needs root; run the tests as root (CI does) to check it", what)
	}
}

// ListDir lists the names in directory d, sorted.
func ListDir(t testing.TB, d string) []string {
	t.Helper()
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}
