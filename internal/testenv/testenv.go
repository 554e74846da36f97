// Package testenv holds what the tests of every module of this repository share about their
// environment.
package testenv

import (
	"os"
	"testing"
)

// CI reports whether the tests run in CI (WWEBSTORE_CI=1, set by scripts/test when CI is set),
// where every suite must run for real.
func CI() bool { return os.Getenv("WWEBSTORE_CI") == "1" }

// Unavailable skips the test because something it needs (a server, a container engine, a tool)
// is missing, with a message that says how to provide it. In CI, a skip would hide that nothing
// was tested, so the test fails instead.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("WWEBSTORE_CI=1 and "+format, args...)
	}
	t.Skipf(format, args...)
}
