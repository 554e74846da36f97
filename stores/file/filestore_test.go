package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
	filestore "github.com/wwebstore/wwebstore/stores/file"
	"github.com/wwebstore/wwebstore/storetest"
)

// newStore returns a store in a new temporary directory, and that directory.
func newStore(t *testing.T) (*filestore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := filestore.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st, dir
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		st, _ := newStore(t)
		return st
	})
}

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

func TestLayout(t *testing.T) {
	ctx := t.Context()
	st, dir := newStore(t)
	z := func(n int) string { return strings.Repeat("Z", n) }
	tests := []struct{ session, file string }{
		{"a", "a.zip"},
		{"A", "+A.zip"},
		{"RemoteAuth", "+Remote+Auth.zip"},
		{"RemoteAuth-alice", "+Remote+Auth-alice.zip"},
		{"-", "-.zip"},
		{"_x_Y9", "_x_+Y9.zip"},
		// The longest session name, all upper-case: 204 bytes, within the 255 of a file name.
		{z(remoteauth.MaxSessionNameLen), strings.Repeat("+Z", remoteauth.MaxSessionNameLen) + ".zip"},
	}
	var want []string
	for _, tt := range tests {
		if err := st.Save(ctx, tt.session, strings.NewReader(tt.session)); err != nil {
			t.Fatalf("Save(%q): %v", tt.session, err)
		}
		want = append(want, tt.file)
	}
	slices.Sort(want)
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Fatalf("directory holds %q, want %q", got, want)
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.file)
		if data, err := os.ReadFile(path); err != nil || string(data) != tt.session {
			t.Errorf("%s holds %q, %v; want the archive of session %q", tt.file, data, err, tt.session)
		}
		if len(tt.file) > 255 {
			t.Errorf("file name %s is %d bytes long, more than 255", tt.file, len(tt.file))
		}
		if runtime.GOOS == "windows" {
			continue // no Unix permissions
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want -rw-------", tt.file, fi.Mode(), err)
		}
	}
}

func TestFailedSaveLeavesNoTrace(t *testing.T) {
	errRead := errors.New("read failed on purpose")
	failing := func() io.Reader {
		return io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), iotest.ErrReader(errRead))
	}
	for _, tt := range []struct {
		name    string
		save    func(st *filestore.Store) error
		wantErr error
	}{
		{"ReaderError", func(st *filestore.Store) error {
			return st.Save(t.Context(), "RemoteAuth-a", failing())
		}, errRead},
		{"Canceled", func(st *filestore.Store) error {
			ctx, cancel := context.WithCancel(t.Context())
			r := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), readerFunc(func([]byte) (int, error) {
				cancel()
				return 0, nil
			}), strings.NewReader("more"))
			return st.Save(ctx, "RemoteAuth-a", r)
		}, context.Canceled},
	} {
		for _, previous := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/previous=%v", tt.name, previous), func(t *testing.T) {
				st, dir := newStore(t)
				var want []string
				if previous {
					if err := st.Save(t.Context(), "RemoteAuth-a", strings.NewReader("previous")); err != nil {
						t.Fatal(err)
					}
					want = []string{"+Remote+Auth-a.zip"}
				}
				if err := tt.save(st); !errors.Is(err, tt.wantErr) {
					t.Fatalf("Save: %v, want an error wrapping %v", err, tt.wantErr)
				}
				if got := listDir(t, dir); !slices.Equal(got, want) {
					t.Errorf("after a failed Save the directory holds %q, want %q", got, want)
				}
				if previous {
					if data, err := os.ReadFile(filepath.Join(dir, want[0])); string(data) != "previous" {
						t.Errorf("after a failed Save the archive holds %d bytes, %v; want the previous archive", len(data), err)
					}
				}
			})
		}
	}
}

// readerFunc is an io.Reader made of a function.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestFailedRenameLeavesNoTemp(t *testing.T) {
	st, dir := newStore(t)
	// A directory where the archive should be makes the rename fail.
	if err := os.Mkdir(filepath.Join(dir, "a.zip"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(t.Context(), "a", strings.NewReader("archive")); err == nil {
		t.Fatal("Save over a directory succeeded")
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"a.zip"}) {
		t.Errorf("after a failed rename the directory holds %q, want only the directory a.zip", got)
	}
}

func TestNewRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	files := map[string]time.Duration{ // name → age
		".+Remote+Auth-a.tmp-123": 25 * time.Hour, // stale: removed
		".b.tmp-456":              time.Hour,      // maybe still being written: kept
		"+Remote+Auth-a.zip":      48 * time.Hour, // an archive: kept
		".notes":                  48 * time.Hour, // not a temporary file: kept
		"c.tmp-789":               48 * time.Hour, // no leading dot: kept
	}
	for name, age := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	subdir := filepath.Join(dir, ".d.tmp-1") // a directory: kept
	if err := os.Mkdir(subdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(subdir, now.Add(-48*time.Hour), now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		opts    *filestore.Options
		removed string
	}{
		{&filestore.Options{StaleTempAge: -1}, ""},
		{nil, ".+Remote+Auth-a.tmp-123"},
		{&filestore.Options{StaleTempAge: 30 * time.Minute}, ".b.tmp-456"},
	}
	want := []string{"+Remote+Auth-a.zip", ".+Remote+Auth-a.tmp-123", ".b.tmp-456", ".d.tmp-1", ".notes", "c.tmp-789"} // sorted
	for _, step := range steps {
		if _, err := filestore.New(dir, step.opts); err != nil {
			t.Fatal(err)
		}
		want = slices.DeleteFunc(want, func(name string) bool { return name == step.removed })
		if got := listDir(t, dir); !slices.Equal(got, want) {
			t.Errorf("after New with %+v the directory holds %q, want %q", step.opts, got, want)
		}
	}
}

func TestNew(t *testing.T) {
	t.Run("CreatesDir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "x", "y")
		if _, err := filestore.New(dir, nil); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			t.Fatalf("New did not create %s: %v", dir, err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700 {
			t.Errorf("New created %s with mode %v, want drwx------", dir, fi.Mode())
		}
	})
	t.Run("Relative", func(t *testing.T) {
		wd := t.TempDir()
		t.Chdir(wd)
		st, err := filestore.New("sessions", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Chdir(t.TempDir()) // the store keeps the directory it was opened with
		if err := st.Save(t.Context(), "a", strings.NewReader("archive")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(wd, "sessions", "a.zip")); err != nil {
			t.Error(err)
		}
	})
	t.Run("Errors", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{"", file, filepath.Join(file, "sub")} {
			if st, err := filestore.New(dir, nil); err == nil {
				t.Errorf("New(%q) = %v, nil; want an error", dir, st)
			}
		}
	})
}

// A vanished directory (deleted, or a network mount gone) is a failure, never a missing session.
func TestMissingDirectory(t *testing.T) {
	ctx := t.Context()
	st, dir := newStore(t)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.SessionExists(ctx, "a"); err == nil {
		t.Errorf("SessionExists without the store's directory = %v, nil; want an error", ok)
	}
	var buf bytes.Buffer
	if err := st.Extract(ctx, "a", &buf); err == nil || errors.Is(err, remoteauth.ErrNotFound) {
		t.Errorf("Extract without the store's directory: %v; want an error not wrapping ErrNotFound", err)
	}
	if err := st.Save(ctx, "a", strings.NewReader("archive")); err == nil {
		t.Error("Save without the store's directory succeeded")
	}
}

func TestErrors(t *testing.T) {
	ctx := t.Context()
	st, dir := newStore(t)
	err := st.Extract(ctx, "RemoteAuth-bob", io.Discard)
	if !errors.Is(err, remoteauth.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Extract of a missing session: %v; want an error wrapping ErrNotFound and fs.ErrNotExist", err)
	}
	want := `filestore: extract session "RemoteAuth-bob": ` + remoteauth.ErrNotFound.Error() + ": open " + filepath.Join(dir, "+Remote+Auth-bob.zip") + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Extract of a missing session: %q; want it to begin with %q", err, want)
	}
	err = st.Delete(ctx, "../a")
	if !errors.Is(err, remoteauth.ErrInvalidSession) || !strings.HasPrefix(err.Error(), "filestore: delete: ") || !strings.Contains(err.Error(), `"../a"`) {
		t.Errorf("Delete with an invalid name: %q, want a filestore error wrapping ErrInvalidSession that names the session", err)
	}
}

func TestOpenStore(t *testing.T) {
	ctx := t.Context()
	wd := t.TempDir()
	t.Chdir(wd)
	abs := filepath.Join(t.TempDir(), "sessions")
	absURL := filepath.ToSlash(abs)
	if !strings.HasPrefix(absURL, "/") {
		absURL = "/" + absURL // file:///C:/dir on Windows
	}
	for _, tt := range []struct{ url, dir string }{
		{"file://" + absURL, abs},
		{"file://localhost" + absURL, abs},
		{"FILE://" + absURL, abs},
		{"file://./rel/a", filepath.Join(wd, "rel", "a")},
		{"file://.", wd},
		{"file:rel/b", filepath.Join(wd, "rel", "b")},
		{"file:rel/with%20space", filepath.Join(wd, "rel", "with space")},
	} {
		st, err := remoteauth.OpenStore(ctx, tt.url)
		if err != nil {
			t.Errorf("OpenStore(%q): %v", tt.url, err)
			continue
		}
		if err := st.Save(ctx, "RemoteAuth-x", strings.NewReader(tt.url)); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(tt.dir, "+Remote+Auth-x.zip")
		if data, err := os.ReadFile(path); err != nil || string(data) != tt.url {
			t.Errorf("OpenStore(%q) then Save: %s holds %q, %v; want the saved archive", tt.url, path, data, err)
		}
	}
	for _, bad := range []string{"file://", "file://example.com/x", "file://" + absURL + "?mode=1", "file://" + absURL + "#x"} {
		if st, err := remoteauth.OpenStore(ctx, bad); err == nil {
			t.Errorf("OpenStore(%q) = %v, nil; want an error", bad, st)
		}
	}
}

func Example() {
	dir, err := os.MkdirTemp("", "filestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	st, err := filestore.New(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Save(ctx, "RemoteAuth-alice", strings.NewReader("zip bytes")); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := st.Extract(ctx, "RemoteAuth-alice", &buf); err != nil {
		log.Fatal(err)
	}
	fmt.Println(buf.String())

	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.Name())
	}
	// Output:
	// zip bytes
	// +Remote+Auth-alice.zip
}

// OpenStore opens a filestore for a "file" URL once the package is imported.
func Example_openStore() {
	dir, err := os.MkdirTemp("", "filestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	st, err := remoteauth.OpenStore(ctx, "file://"+filepath.ToSlash(dir)) // on Unix, file:///tmp/…
	if err != nil {
		log.Fatal(err)
	}
	ok, err := st.SessionExists(ctx, "RemoteAuth-alice")
	fmt.Println(ok, err)
	// Output: false <nil>
}
