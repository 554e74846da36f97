package filestore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListSkipsForeignFiles checks that List reports the archives of valid session names only:
// not the temporary files of Saves in progress, nor files and directories that are no archive of
// a session.
func TestListSkipsForeignFiles(t *testing.T) {
	st, dir := newStore(t)
	if err := st.Save(t.Context(), "RemoteAuth-alice", strings.NewReader("archive")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		".+Remote+Auth-bob.tmp-123456", // a Save in progress
		"RemoteAuth-bob.zip",           // upper case without its escapes: not a name fileName makes
		"+a.zip",                       // an escape before a lower-case letter
		"a b.zip",                      // not a valid session name
		"notes.txt",
		"c",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "d.zip"), 0o700); err != nil {
		t.Fatal(err)
	}
	list, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "RemoteAuth-alice" || list[0].Size != int64(len("archive")) {
		t.Fatalf("List = %+v, want RemoteAuth-alice alone, 7 bytes", list)
	}
}

func TestListMissingDirectory(t *testing.T) {
	st, dir := newStore(t)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := st.List(t.Context()); err == nil || !strings.Contains(err.Error(), "filestore") {
		t.Fatalf("List of a store whose directory is gone: %v, want an error naming filestore", err)
	}
}
