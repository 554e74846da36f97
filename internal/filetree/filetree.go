// Package filetree writes and reads small directory trees in tests: a browser profile to back up,
// and the profile that a restore left behind. A tree is a map from slash-separated paths relative
// to its directory to file contents, so that two trees compare with maps.Equal.
//
// Both functions stop the test with t.Fatalf, naming the path, when the file system fails them.
// They know nothing of modes, times or hashes: a test that checks those reads the tree itself.
package filetree

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Write writes files under dir: each key is a slash-separated path relative to dir, each value
// the file's whole content. Missing directories are made with mode 0700 and files written with
// mode 0600, as a browser profile's are; an existing file is overwritten, and files of dir that
// are not in files are left alone.
func Write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatalf("filetree.Write: %v", err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatalf("filetree.Write: %v", err)
		}
	}
}

// Read returns every regular file under dir, by slash-separated path relative to dir; empty
// directories do not appear. A missing dir, an unreadable file, or an entry that is neither a
// directory nor a regular file (a symlink, a socket) stops the test: a restored profile holds
// none.
func Read(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is a %v, not a regular file", p, d.Type())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("filetree.Read(%s): %v", dir, err)
	}
	return files
}
