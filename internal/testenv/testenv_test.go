package testenv

import "testing"

func TestCI(t *testing.T) {
	t.Setenv("WWEBSTORE_CI", "1")
	if !CI() {
		t.Error("CI() = false with WWEBSTORE_CI=1")
	}
	t.Setenv("WWEBSTORE_CI", "")
	if CI() {
		t.Error("CI() = true without WWEBSTORE_CI")
	}
}

func TestUnavailableSkipsOutsideCI(t *testing.T) {
	t.Setenv("WWEBSTORE_CI", "")
	skipped := t.Run("inner", func(t *testing.T) {
		Unavailable(t, "no %s here", "server")
		t.Error("Unavailable returned")
	})
	if !skipped {
		t.Error("the inner test failed instead of skipping")
	}
}
