package filestore_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
	filestore "github.com/wwebstore/wwebstore/stores/file"
)

var idRE = regexp.MustCompile(`^[0-9]{19}$`)

// saveString saves data as session's archive.
func saveString(t *testing.T, st *filestore.Store, session, data string) {
	t.Helper()
	if err := st.Save(t.Context(), session, strings.NewReader(data)); err != nil {
		t.Fatalf("Save(%q, %q): %v", session, data, err)
	}
}

// versions returns the kept archives of session, newest first, as strings, and their IDs.
func versions(t *testing.T, st *filestore.Store, session string) (data, ids []string) {
	t.Helper()
	list, err := st.Versions(t.Context(), session)
	if err != nil {
		t.Fatalf("Versions(%q): %v", session, err)
	}
	for _, v := range list {
		if !idRE.MatchString(v.ID) {
			t.Errorf("Versions(%q): ID %q is not 19 digits", session, v.ID)
		}
		var buf bytes.Buffer
		if err := st.ExtractVersion(t.Context(), session, v.ID, &buf); err != nil {
			t.Fatalf("ExtractVersion(%q, %q): %v", session, v.ID, err)
		}
		data = append(data, buf.String())
		ids = append(ids, v.ID)
	}
	return data, ids
}

func TestHistoryLayout(t *testing.T) {
	st, dir := newStore(t)
	const session = "RemoteAuth-alice"
	saveString(t, st, session, "first")
	if got := listDir(t, dir); !slices.Equal(got, []string{"+Remote+Auth-alice.zip"}) {
		t.Errorf("after one Save the directory holds %q, want only the archive", got)
	}
	saveString(t, st, session, "second")
	_, ids := versions(t, st, session)
	saveString(t, st, session, "third")
	if got, want := listDir(t, dir), []string{"+Remote+Auth-alice.history", "+Remote+Auth-alice.zip"}; !slices.Equal(got, want) {
		t.Errorf("after three Saves the directory holds %q, want %q", got, want)
	}
	hist := filepath.Join(dir, "+Remote+Auth-alice.history")
	if got, want := listDir(t, hist), []string{ids[0] + ".zip"}; !slices.Equal(got, want) {
		t.Errorf("the history directory holds %q, want %q: the second archive under the ID it had as the current one", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(hist, ids[0]+".zip")); err != nil || string(b) != "second" {
		t.Errorf("kept archive %s holds %q, %v; want %q", ids[0], b, err, "second")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "+Remote+Auth-alice.zip")); err != nil || string(b) != "third" {
		t.Errorf("the current archive holds %q, %v; want %q", b, err, "third")
	}
	if fi, err := os.Stat(filepath.Join(hist, ids[0]+".zip")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kept archive: mode %v, %v; want -rw-------", fi.Mode(), err)
	}
}

func TestHistoryKeep(t *testing.T) {
	saved := []string{"v1", "v2", "v3", "v4", "v5"}
	for _, keep := range []int{1, 2, 3, 5, 7} {
		t.Run(fmt.Sprint("Keep=", keep), func(t *testing.T) {
			dir := t.TempDir()
			st, err := filestore.New(dir, &filestore.Options{Keep: keep})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range saved {
				saveString(t, st, "a", s)
			}
			want := slices.Clone(saved[max(0, len(saved)-keep):])
			slices.Reverse(want)
			if got, _ := versions(t, st, "a"); !slices.Equal(got, want) {
				t.Errorf("Versions = %q, want %q", got, want)
			}
			entries, err := os.ReadDir(filepath.Join(dir, "a.history"))
			switch {
			case keep == 1 && !errors.Is(err, os.ErrNotExist):
				t.Errorf("with Keep 1, a.history exists (%v)", err)
			case keep > 1 && (err != nil || len(entries) != len(want)-1):
				t.Errorf("a.history holds %d files, %v; want %d", len(entries), err, len(want)-1)
			}
		})
	}
}

// TestHistoryKeepChanged reopens a directory with a smaller Keep: the listing is cut at once,
// and the next Save evicts the rest.
func TestHistoryKeepChanged(t *testing.T) {
	dir := t.TempDir()
	st3, err := filestore.New(dir, &filestore.Options{Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"v1", "v2", "v3"} {
		saveString(t, st3, "a", s)
	}
	st2, err := filestore.New(dir, &filestore.Options{Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := func() []string { d, _ := versions(t, st2, "a"); return d }(), []string{"v3", "v2"}; !slices.Equal(got, want) {
		t.Errorf("Versions with Keep 2 = %q, want %q", got, want)
	}
	saveString(t, st2, "a", "v4")
	if got := listDir(t, filepath.Join(dir, "a.history")); len(got) != 1 {
		t.Errorf("after a Save with Keep 2, a.history holds %q, want one file", got)
	}
	st1, err := filestore.New(dir, &filestore.Options{Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	saveString(t, st1, "a", "v5")
	if got := listDir(t, dir); !slices.Equal(got, []string{"a.zip"}) {
		t.Errorf("after a Save with Keep 1 the directory holds %q, want only a.zip", got)
	}
}

// TestHistoryExistingArchive: an archive written before filestore kept history (or with Keep 1)
// is listed, keeps its ID when a Save replaces it, and is kept.
func TestHistoryExistingArchive(t *testing.T) {
	st, dir := newStore(t)
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	path := filepath.Join(dir, "+Remote+Auth-old.zip")
	if err := os.WriteFile(path, []byte("old archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	data, ids := versions(t, st, "RemoteAuth-old")
	if want := fmt.Sprintf("%019d", mtime.UnixNano()); !slices.Equal(data, []string{"old archive"}) || ids[0] != want {
		t.Fatalf("Versions = %q with IDs %q; want the old archive with ID %s, its modification time", data, ids, want)
	}
	saveString(t, st, "RemoteAuth-old", "new archive")
	data, ids2 := versions(t, st, "RemoteAuth-old")
	if !slices.Equal(data, []string{"new archive", "old archive"}) || ids2[1] != ids[0] {
		t.Errorf("after a Save, Versions = %q with IDs %q; want the new archive, then the old one with ID %s", data, ids2, ids[0])
	}
}

// TestHistoryInterrupted builds the states that a process killed in the middle of a Save or a
// Delete leaves, and checks that nothing is lost, nothing is listed twice, and nothing deleted
// comes back.
func TestHistoryInterrupted(t *testing.T) {
	t.Run("DeleteBeforeHistoryRemoved", func(t *testing.T) {
		st, dir := newStore(t)
		for _, s := range []string{"v1", "v2"} {
			saveString(t, st, "a", s)
		}
		_, ids := versions(t, st, "a")
		// Delete removed a.zip and died before removing a.history.
		if err := os.Remove(filepath.Join(dir, "a.zip")); err != nil {
			t.Fatal(err)
		}
		if data, _ := versions(t, st, "a"); len(data) != 0 {
			t.Errorf("Versions of a deleted session = %q, want none", data)
		}
		var buf bytes.Buffer
		if err := st.ExtractVersion(t.Context(), "a", ids[1], &buf); !errors.Is(err, remoteauth.ErrNotFound) || buf.Len() != 0 {
			t.Errorf("ExtractVersion of a deleted session's archive = %q, %v; want nothing, ErrNotFound", buf.String(), err)
		}
		saveString(t, st, "a", "fresh")
		if data, _ := versions(t, st, "a"); !slices.Equal(data, []string{"fresh"}) {
			t.Errorf("after a new Save, Versions = %q, want only the new archive", data)
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{"a.zip"}) {
			t.Errorf("the directory holds %q, want the history of the deleted session gone", got)
		}
	})
	t.Run("SaveAfterLink", func(t *testing.T) {
		st, dir := newStore(t)
		for _, s := range []string{"v1", "v2"} {
			saveString(t, st, "a", s)
		}
		_, ids := versions(t, st, "a")
		// A Save linked a.zip into the history and died before its rename.
		if err := os.Link(filepath.Join(dir, "a.zip"), filepath.Join(dir, "a.history", ids[0]+".zip")); err != nil {
			t.Fatal(err)
		}
		data, ids2 := versions(t, st, "a")
		if !slices.Equal(data, []string{"v2", "v1"}) || !slices.Equal(ids, ids2) {
			t.Errorf("Versions = %q %q, want %q %q: the linked archive listed once, under its ID", data, ids2, []string{"v2", "v1"}, ids)
		}
		saveString(t, st, "a", "v3")
		if data, ids3 := versions(t, st, "a"); !slices.Equal(data, []string{"v3", "v2"}) || ids3[1] != ids[0] {
			t.Errorf("after a Save, Versions = %q %q; want v3, then v2 as %s", data, ids3, ids[0])
		}
		if got := listDir(t, filepath.Join(dir, "a.history")); len(got) != 1 {
			t.Errorf("a.history holds %q, want one file", got)
		}
	})
	t.Run("SaveBeforeEviction", func(t *testing.T) {
		st, dir := newStore(t)
		for _, s := range []string{"v1", "v2"} {
			saveString(t, st, "a", s)
		}
		// A Save died after its rename, before evicting: older files beyond Keep.
		hist := filepath.Join(dir, "a.history")
		for i, s := range []string{"older", "oldest"} {
			if err := os.WriteFile(filepath.Join(hist, fmt.Sprintf("%019d.zip", 1000-i)), []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if data, _ := versions(t, st, "a"); !slices.Equal(data, []string{"v2", "v1"}) {
			t.Errorf("Versions = %q, want the last 2", data)
		}
		saveString(t, st, "a", "v3")
		if data, _ := versions(t, st, "a"); !slices.Equal(data, []string{"v3", "v2"}) {
			t.Errorf("after a Save, Versions = %q, want v3, v2", data)
		}
		if got := listDir(t, hist); len(got) != 1 {
			t.Errorf("a.history holds %q, want the files beyond Keep evicted", got)
		}
	})
}

func TestHistoryOptions(t *testing.T) {
	if _, err := filestore.New(t.TempDir(), &filestore.Options{Keep: -1}); err == nil || !strings.Contains(err.Error(), "Keep") {
		t.Errorf("New with Keep -1: %v, want an error naming Keep", err)
	}
	ctx := t.Context()
	dir := t.TempDir()
	st, err := remoteauth.OpenStore(ctx, "file://"+filepath.ToSlash(dir)+"?keep=3")
	if err != nil {
		t.Fatal(err)
	}
	h := st.(remoteauth.History)
	for _, s := range []string{"v1", "v2", "v3", "v4"} {
		if err := st.Save(ctx, "a", strings.NewReader(s)); err != nil {
			t.Fatal(err)
		}
	}
	if list, err := h.Versions(ctx, "a"); err != nil || len(list) != 3 {
		t.Errorf("Versions from a store opened with keep=3 = %v, %v; want 3 archives", list, err)
	}
	for _, bad := range []string{"?keep=0", "?keep=-1", "?keep=x", "?keep=1&keep=2", "?mode=1"} {
		if _, err := remoteauth.OpenStore(ctx, "file://"+filepath.ToSlash(dir)+bad); err == nil {
			t.Errorf("OpenStore(%q) succeeded, want an error", bad)
		}
	}
}
