package remoteauth_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

// TestNewSessionBadConfiguration checks that each bad configuration fails at NewSession, with an
// error that names the setting and says what to do.
func TestNewSessionBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		store remoteauth.Store
		opts  remoteauth.Options
		want  []string // each in the error
		is    error
	}{
		{"nil store", nil, remoteauth.Options{DataPath: dir}, []string{"the Store is nil", "pass one"}, nil},
		{"typed nil store", (*memstore.Store)(nil), remoteauth.Options{DataPath: dir}, []string{"a nil *memstore.Store", "after checking its error"}, nil},
		{"interval under a minute", memstore.New(), remoteauth.Options{DataPath: dir, BackupInterval: 59 * time.Second}, []string{"BackupInterval 59s is shorter than the minimum 1m0s", "set at least 1m0s, or 0 for the default 5m0s"}, nil},
		{"negative interval", memstore.New(), remoteauth.Options{DataPath: dir, BackupInterval: -time.Minute}, []string{"BackupInterval -1m0s"}, nil},
		{"bad clientId", memstore.New(), remoteauth.Options{DataPath: dir, ClientID: "alice@example.com"}, []string{`clientId "alice@example.com"`, "only alphanumeric characters, underscores and hyphens"}, remoteauth.ErrInvalidSession},
		{"clientId too long", memstore.New(), remoteauth.Options{DataPath: dir, ClientID: strings.Repeat("x", remoteauth.MaxSessionNameLen)}, []string{"more than 100"}, remoteauth.ErrInvalidSession},
		{"unsafe kept dir", memstore.New(), remoteauth.Options{DataPath: dir, KeptDirs: []string{"/etc"}}, []string{`kept directory "/etc"`, "absolute path"}, nil},
		{"compression", memstore.New(), remoteauth.Options{DataPath: dir, Compression: 11}, []string{"Compression 11", "1 to 9"}, nil},
		{"DataPath is a file", memstore.New(), remoteauth.Options{DataPath: file}, []string{"is not a directory", "set Options.DataPath to a writable directory"}, nil},
		{"DataPath under a file", memstore.New(), remoteauth.Options{DataPath: filepath.Join(file, "auth")}, []string{"not a directory", "set Options.DataPath"}, nil},
		{"DataPath under /proc", memstore.New(), remoteauth.Options{DataPath: "/proc/wwebstore-auth"}, []string{`DataPath "/proc/wwebstore-auth" cannot hold the profile`, "cannot create files in /proc"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := remoteauth.NewSession(tt.store, &tt.opts)
			if err == nil {
				t.Fatalf("NewSession = %v, nil; want an error", s)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error %q does not say %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("the error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

// TestNewSessionLeavesNoTrace checks that the DataPath probe leaves nothing behind and creates
// no directory.
func TestNewSessionLeavesNoTrace(t *testing.T) {
	for _, sub := range []string{"", "not/yet/there"} {
		dir := t.TempDir()
		if _, err := remoteauth.NewSession(memstore.New(), &remoteauth.Options{DataPath: filepath.Join(dir, sub)}); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("DataPath %q: NewSession left %v in %s", sub, entries, dir)
		}
	}
}

// TestOpenStoreBadURLs checks that a bad store URL fails with an error that says what is wrong
// and what would be right.
func TestOpenStoreBadURLs(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want []string
	}{
		{"", []string{"has no scheme", "known schemes: ", "mem"}},
		{"/var/lib/sessions", []string{"has no scheme", "known schemes: "}},
		{"localhost:6379", []string{`no store registered for scheme "localhost"`, "(import its package)", "known schemes: "}},
		{"nosuch://host/x", []string{`no store registered for scheme "nosuch"`, "known schemes: "}},
		{"redis://localhost:6379", []string{`no store registered for scheme "redis"`, "(import its package)"}}, // redisstore is not imported here
		{"%zz://x", []string{"store URL does not parse", "first path segment in URL cannot contain colon", "percent-encoded"}},
		{"mem://[::1", []string{"store URL does not parse", "missing ']'"}},
		{"redis://user:pa%ss@host", []string{"store URL does not parse", `invalid URL escape "%ss"`, "percent-encoded"}},
		{"mem://name", []string{"open mem store", `want "mem://"`}},
		{"file://otherhost/dir", []string{"open file store", `host "otherhost"`, "file:///absolute/dir or file://./relative/dir"}},
		{"file://", []string{"open file store", "names no directory"}},
	} {
		t.Run(tt.url, func(t *testing.T) {
			st, err := remoteauth.OpenStore(t.Context(), tt.url)
			if err == nil {
				t.Fatalf("OpenStore(%q) = %T; want an error", tt.url, st)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "pa%ss") {
				t.Errorf("the error %q shows the password", err)
			}
		})
	}
	if !slices.Contains(remoteauth.Schemes(), "mem") {
		t.Fatal("memstore is not registered: the cases above test nothing")
	}
}
