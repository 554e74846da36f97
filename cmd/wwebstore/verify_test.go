package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	filestore "github.com/wwebstore/wwebstore/stores/file"
)

// zipOf returns an archive of stored (uncompressed) entries, name → data, in the given order.
func zipOf(t *testing.T, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e[0], Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e[1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestVerifyFindsDamage saves damaged archives straight into a file store, and checks that
// verify and inspect report them, and that restore refuses them and leaves the profile as it was.
func TestVerifyFindsDamage(t *testing.T) {
	const payload = "LevelDB table data that the damage will change"
	badCRC := zipOf(t, [2]string{"Default/IndexedDB/000003.ldb", payload})
	i := bytes.Index(badCRC, []byte(payload))
	badCRC[i] ^= 0xff
	tests := []struct {
		name    string
		archive []byte
		verify  string // in verify's error
		inspect int    // inspect's exit code
	}{
		{"bad CRC", badCRC, `entry "Default/IndexedDB/000003.ldb": bad data`, exitOK},
		{"unsafe name", zipOf(t, [2]string{"Default/../../evil", "x"}), `".." in the path`, exitFailure},
		{"not a zip", []byte("a session that is not a zip archive"), "not a readable zip archive", exitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			url := "file://" + dir
			st, err := filestore.New(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Save(t.Context(), "RemoteAuth-bad", bytes.NewReader(tt.archive)); err != nil {
				t.Fatal(err)
			}
			var h harness
			r := h.mustRun(t, exitFailure, "verify", "--store", url, "--session", "RemoteAuth-bad")
			if !strings.Contains(r.stderr, tt.verify) || !strings.Contains(r.stderr, "is damaged") {
				t.Errorf("verify: %s\nwant %q", r, tt.verify)
			}
			var v verifyResult
			decode(t, h.mustRun(t, exitFailure, "verify", "--store", url, "--session", "RemoteAuth-bad", "--json"), &v)
			if v.OK || !strings.Contains(v.Problem, tt.verify) {
				t.Errorf("verify --json: %+v", v)
			}
			r = h.mustRun(t, tt.inspect, "inspect", "--store", url, "--session", "RemoteAuth-bad")
			if tt.inspect == exitOK && !strings.Contains(r.stdout, "Default/IndexedDB/000003.ldb") {
				t.Errorf("inspect does not list the entry: %s", r)
			}
			if tt.name == "unsafe name" && !strings.Contains(r.stdout, "Default/../../evil") {
				t.Errorf("inspect does not list the unsafe entry: %s", r)
			}

			// restore refuses the archive and leaves the profile as it was.
			profile := filepath.Join(t.TempDir(), "RemoteAuth-bad")
			if err := os.MkdirAll(filepath.Join(profile, "Default", "IndexedDB"), 0o700); err != nil {
				t.Fatal(err)
			}
			keep := filepath.Join(profile, "Default", "IndexedDB", "mine")
			if err := os.WriteFile(keep, []byte("the good local profile"), 0o600); err != nil {
				t.Fatal(err)
			}
			r = h.mustRun(t, exitFailure, "restore", "--store", url, "--session", "RemoteAuth-bad", "--dir", profile)
			if !strings.Contains(r.stderr, "the directory is unchanged") {
				t.Errorf("restore of a damaged archive: %s", r)
			}
			if b, err := os.ReadFile(keep); err != nil || string(b) != "the good local profile" {
				t.Errorf("restore of a damaged archive changed the profile: %q, %v", b, err)
			}
			entries, _ := os.ReadDir(filepath.Dir(profile))
			if len(entries) != 1 {
				t.Errorf("restore left files beside the profile: %v", entries)
			}
		})
	}
}
