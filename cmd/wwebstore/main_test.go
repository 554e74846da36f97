package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

func TestMain(m *testing.M) { testservers.Main(m) }

// harness runs the command in-process. Its store opener gives one memstore for "mem://" per
// harness, so that mem:// sessions outlive a command as they do within a process; every other URL
// goes to remoteauth.OpenStore.
type harness struct {
	mu   sync.Mutex
	mem  *memstore.Store
	wrap func(remoteauth.Store) remoteauth.Store // if set, applied to every store opened
}

// result is what one run of the command gave.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func (h *harness) open(ctx context.Context, rawURL string) (remoteauth.Store, error) {
	st, err := h.openURL(ctx, rawURL)
	if err == nil && h.wrap != nil {
		st = h.wrap(st)
	}
	return st, err
}

func (h *harness) openURL(ctx context.Context, rawURL string) (remoteauth.Store, error) {
	if rawURL == "mem://" {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.mem == nil {
			h.mem = memstore.New()
		}
		return h.mem, nil
	}
	return remoteauth.OpenStore(ctx, rawURL)
}

// run runs the command with args, stdin as its standard input and the process's environment.
func (h *harness) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, env{
		stdin:     strings.NewReader(stdin),
		stdout:    &stdout,
		stderr:    &stderr,
		getenv:    os.Getenv,
		openStore: h.open,
	})
	return result{code, stdout.String(), stderr.String()}
}

// mustRun runs the command and fails the test unless it exits with want.
func (h *harness) mustRun(t *testing.T, want int, args ...string) result {
	t.Helper()
	r := h.run(t, "", args...)
	if r.code != want {
		t.Fatalf("wwebstore %s: want exit code %d, got %s", strings.Join(args, " "), want, r)
	}
	return r
}

// decode decodes the one JSON document of r's stdout into v.
func decode(t *testing.T, r result, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not the JSON document expected: %v\n%s", err, r.stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON document:\n%s", r.stdout)
	}
}

// newProfile generates a small profile in a directory named RemoteAuth-<clientID>, and returns it
// with the hashes of its session data.
func newProfile(t *testing.T, clientID string, seed int64) (string, map[string]fileSum) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "RemoteAuth-"+clientID)
	if _, err := profilegen.Generate(t.Context(), dir, profilegen.Options{Size: 2 << 20, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	sums, err := hashTree(dir, remoteauth.DefaultKeptDirs)
	if err != nil {
		t.Fatal(err)
	}
	return dir, sums
}

func TestDemo(t *testing.T) {
	var h harness
	r := h.mustRun(t, exitOK, "demo", "-size", "8MiB", "-dir", t.TempDir())
	for _, want := range []string{"generate", "back up", "nothing sent", "wipe", "restore", "identical byte for byte", "The session survived the wipe."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestUsage(t *testing.T) {
	store := "file://" + t.TempDir()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Usage: wwebstore <command>"},
		{[]string{"help"}, exitOK, "Exit codes: 0 ok, 1 failure, 2 usage, 3 session not found"},
		{[]string{"nosuch"}, exitUsage, `unknown command "nosuch"`},
		{[]string{"demo", "-size", "lots"}, exitUsage, "is not a size"},
		{[]string{"demo", "extra"}, exitUsage, "unexpected arguments: extra"},
		{[]string{"ls", "--nosuch"}, exitUsage, "flag provided but not defined: -nosuch"},
		{[]string{"ls"}, exitUsage, "no store: give --store URL or set WWEBSTORE_STORE"},
		{[]string{"ls", "--store", "env:WWEBSTORE_TEST_UNSET"}, exitUsage, "WWEBSTORE_TEST_UNSET is empty or not set"},
		{[]string{"ls", "--store", "nosuch://x"}, exitFailure, `no store registered for scheme "nosuch"`},
		{[]string{"exists", "--store", store}, exitUsage, "no session: give --session NAME"},
		{[]string{"exists", "--store", store, "--session", "a/b"}, exitUsage, "may only hold letters"},
		{[]string{"backup", "--store", store}, exitUsage, "no profile directory: give --dir DIR"},
		{[]string{"backup", "--store", store, "--dir", "/tmp/profile"}, exitUsage, "a profile directory is named RemoteAuth-<clientId>"},
		{[]string{"restore", "--store", store, "--session", "RemoteAuth-a", "--dir", "/tmp/x"}, exitUsage, "use --dir /tmp/x/RemoteAuth-a"},
		{[]string{"cp", "--from", store, "--to", store, "--all"}, exitUsage, "--from and --to are the same store"},
		{[]string{"cp", "--from", store, "--to", "mem://", "--all", "--session", "a"}, exitUsage, "not both"},
		{[]string{"cp", "--from", store, "--to", "mem://"}, exitUsage, "or --all"},
		{[]string{"bench", "--store", store, "--size", "100KiB"}, exitUsage, "less than the smallest profile"},
	}
	var h harness
	for _, tt := range tests {
		r := h.run(t, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("wwebstore %q: %s\nwant exit code %d and %q on stderr", tt.args, r, tt.code, tt.want)
		}
	}
}

// TestHelp checks that every command has a -h that exits with 0 and shows an example, and that
// the top-level usage lists every command.
func TestHelp(t *testing.T) {
	var h harness
	top := h.mustRun(t, exitOK, "--help")
	for _, c := range commands {
		if !strings.Contains(top.stderr, "  "+c.name+" ") {
			t.Errorf("the usage does not list %s:\n%s", c.name, top.stderr)
		}
		r := h.mustRun(t, exitOK, c.name, "-h")
		for _, want := range []string{"Usage: wwebstore " + c.name, "Example:\n  wwebstore " + c.name, "-json", "Exit codes"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("wwebstore %s -h lacks %q:\n%s", c.name, want, r.stderr)
			}
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

// TestStoreFromEnvironment checks that --store defaults to $WWEBSTORE_STORE, and that env:NAME
// reads a URL from the environment.
func TestStoreFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvStore, "file://"+dir)
	t.Setenv("WWEBSTORE_TEST_URL", "file://"+dir)
	var h harness
	profile, _ := newProfile(t, "env", 1)
	h.mustRun(t, exitOK, "backup", "--dir", profile)
	for _, args := range [][]string{
		{"exists", "--session", "RemoteAuth-env"},
		{"exists", "--store", "env:WWEBSTORE_TEST_URL", "--session", "RemoteAuth-env"},
	} {
		if r := h.mustRun(t, exitOK, args...); r.stdout != "yes\n" {
			t.Errorf("wwebstore %q: %s", args, r)
		}
	}
}
