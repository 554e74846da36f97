package filetree_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/internal/filetree"
)

func TestRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
	}{
		{"empty", map[string]string{}},
		{"one file", map[string]string{"a": "1"}},
		{"profile", map[string]string{
			"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log": "idb",
			"Default/Local Storage/leveldb/000004.log":                                "local storage",
			"Default/Local Storage/leveldb/LOCK":                                      "",
			"é/with space/∂":                                                          strings.Repeat("\x00\xff", 1000),
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			filetree.Write(t, dir, tt.files)
			if got := filetree.Read(t, dir); !maps.Equal(got, tt.files) {
				t.Errorf("Read after Write = %q, want %q", got, tt.files)
			}
		})
	}
}

// TestWriteModes checks the modes Write promises: 0700 directories and 0600 files.
func TestWriteModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix modes")
	}
	dir := t.TempDir()
	filetree.Write(t, dir, map[string]string{"d/f": "x"})
	for name, want := range map[string]os.FileMode{"d": os.ModeDir | 0o700, "d/f": 0o600} {
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		// The umask can only clear bits, and 0700 and 0600 have none a usual umask clears.
		if info.Mode() != want {
			t.Errorf("%s has mode %v, want %v", name, info.Mode(), want)
		}
	}
}

// TestWriteOverwritesAndKeeps checks that Write replaces a file's content and leaves other files
// alone, and that Read leaves empty directories out.
func TestWriteOverwritesAndKeeps(t *testing.T) {
	dir := t.TempDir()
	filetree.Write(t, dir, map[string]string{"a/x": "a long first content", "b": "kept"})
	filetree.Write(t, dir, map[string]string{"a/x": "short"})
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a/x": "short", "b": "kept"}
	if got := filetree.Read(t, dir); !maps.Equal(got, want) {
		t.Errorf("Read = %q, want %q", got, want)
	}
}

// fatalTB records the message of Fatalf and ends the goroutine, as testing.T's Fatalf does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs fn with a fatalTB, and returns the message fn stopped with ("" if it returned).
func fails(fn func(t testing.TB)) string {
	tb := &fatalTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	return tb.msg
}

func TestFailures(t *testing.T) {
	dir := t.TempDir()
	filetree.Write(t, dir, map[string]string{"file": "x"})
	link := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "file"), filepath.Join(link, "link")); err != nil {
		t.Skipf("cannot make a symlink: %v", err)
	}
	for _, tt := range []struct {
		name string
		fn   func(t testing.TB)
		want string // in the message
	}{
		{"Read of a missing dir", func(t testing.TB) { filetree.Read(t, filepath.Join(dir, "missing")) }, "missing"},
		{"Read of a symlink", func(t testing.TB) { filetree.Read(t, link) }, "not a regular file"},
		{"Write under a file", func(t testing.TB) { filetree.Write(t, dir, map[string]string{"file/below": "y"}) }, "file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg := fails(tt.fn)
			if msg == "" || !strings.Contains(msg, tt.want) {
				t.Errorf("stopped with %q, want a Fatalf naming %q", msg, tt.want)
			}
		})
	}
}
