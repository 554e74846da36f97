package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	if code := run(t.Context(), []string{"demo", "-size", "8MiB", "-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"generate", "back up", "nothing sent", "wipe", "restore", "identical byte for byte", "The session survived the wipe."} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage: wwebstore <command>"},
		{[]string{"help"}, 0, "demo"},
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"demo", "-size", "lots"}, 2, "is not a size"},
		{[]string{"demo", "extra"}, 2, "unexpected arguments: extra"},
		{[]string{"demo", "-h"}, 0, "Usage: wwebstore demo"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}

func TestSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"8MiB": 8 << 20, "1GiB": 1 << 30, "1.5G": 3 << 29, "512K": 512 << 10, "100": 100, "2MB": 2 << 20} {
		var s sizeFlag
		if err := s.Set(in); err != nil || int64(s) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, int64(s), err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "0", "x1"} {
		var s sizeFlag
		if err := s.Set(in); err == nil {
			t.Errorf("Set(%q): no error", in)
		}
	}
}
