package remoteauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/remoteauth"
	filestore "github.com/wwebstore/wwebstore/stores/file"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

// historyStore is a store that keeps history, as both root-module stores do.
type historyStore interface {
	remoteauth.Store
	remoteauth.History
}

// historyStores makes an empty store of each kind that implements History.
var historyStores = []struct {
	name string
	new  func(t *testing.T) historyStore
}{
	{"memstore", func(*testing.T) historyStore { return memstore.New() }},
	{"filestore", func(t *testing.T) historyStore {
		st, err := filestore.New(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
}

// goodArchive backs up files and returns the archive, and the files that a restore of it gives.
func goodArchive(t *testing.T, files map[string]string) ([]byte, map[string]string) {
	t.Helper()
	st := memstore.New()
	src := newSession(t, st, nil)
	filetree.Write(t, src.ProfileDir(), files)
	if _, err := src.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := st.Extract(t.Context(), src.Name(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), keptOnly(readTree(t, src.ProfileDir()))
}

// localProfile is what the tests' profiles hold before a restore.
var localProfile = map[string]string{
	"Default/IndexedDB/local.ldb": "the local login",
	"Default/Local Storage/x.log": "local storage",
}

// TestRestoreFallsBack saves a good archive and then a bad one through each History store: the
// restore refuses the newest, restores the previous one, and says so.
func TestRestoreFallsBack(t *testing.T) {
	// Incompressible data makes most of the archive: a byte flipped in its middle is in a file's
	// data, where only the CRC catches it.
	noise := make([]byte, 8<<10)
	x := uint64(7)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	older, olderFiles := goodArchive(t, map[string]string{"Default/IndexedDB/a.ldb": string(noise), "Default/Local Storage/l.log": "older"})
	flipped := bytes.Clone(older)
	flipped[len(flipped)/2] ^= 0x55
	oversized := append(bytes.Clone(older), make([]byte, 64<<10)...)
	hostile := makeZip(t, zipEntry{name: "Default/IndexedDB/ok", data: "x"}, zipEntry{name: "../../escape", data: "x"})
	tests := []struct {
		name   string
		newest []byte
		limits remoteauth.ExtractLimits
		want   error
	}{
		{"FlippedByte", flipped, remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"Truncated", older[:len(older)-100], remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"NotAZip", []byte("this is not an archive"), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"Unsafe", hostile, remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"TooLarge", oversized, remoteauth.ExtractLimits{MaxArchiveSize: int64(len(older)) + 1024}, remoteauth.ErrArchiveTooLarge},
	}
	for _, kind := range historyStores {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				st := kind.new(t)
				for _, archive := range [][]byte{older, tt.newest} {
					if err := st.Save(t.Context(), "RemoteAuth-test", bytes.NewReader(archive)); err != nil {
						t.Fatal(err)
					}
				}
				versions, err := st.Versions(t.Context(), "RemoteAuth-test")
				if err != nil || len(versions) != 2 {
					t.Fatalf("Versions = %v, %v; want 2 archives", versions, err)
				}
				var logs bytes.Buffer
				s := newSession(t, st, &remoteauth.Options{ClientID: "test", Limits: tt.limits, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
				filetree.Write(t, s.ProfileDir(), localProfile)

				res, err := s.Restore(t.Context())
				if err != nil {
					t.Fatalf("Restore: %v; want the previous archive restored", err)
				}
				if !res.FellBack || res.Version != versions[1].ID || !res.Found {
					t.Errorf("Restore = %+v; want FellBack, Version %q (the previous archive)", res, versions[1].ID)
				}
				if len(res.Skipped) != 1 || !errors.Is(res.Skipped[0], tt.want) || !strings.Contains(res.Skipped[0].Error(), versions[0].ID) {
					t.Errorf("Skipped = %v; want one error wrapping %v that names archive %s", res.Skipped, tt.want, versions[0].ID)
				}
				if got := readTree(t, s.ProfileDir()); !maps.Equal(got, olderFiles) {
					t.Errorf("restored %v, want the previous archive's files %v", got, olderFiles)
				}
				warning := fmt.Sprintf("level=WARN msg=\"restored an older archive because the newest failed verification\" session=RemoteAuth-test version=%s newest=%s", versions[1].ID, versions[0].ID)
				if !strings.Contains(logs.String(), warning) || !strings.Contains(logs.String(), tt.want.Error()) {
					t.Errorf("logs do not hold the warning %q with the reason %q:\n%s", warning, tt.want, logs.String())
				}

				// The next backup uploads the restored profile over the damaged archive, though
				// the profile has not changed since the restore.
				b, err := s.Backup(t.Context())
				if err != nil || b.Unchanged {
					t.Fatalf("Backup after a fall-back = %+v, %v; want an upload", b, err)
				}
				if err := s.Close(t.Context()); err != nil { // releases the session lease
					t.Fatal(err)
				}
				again := newSession(t, st, nil)
				if res, err := again.Restore(t.Context()); err != nil || res.FellBack {
					t.Errorf("Restore after that backup = %+v, %v; want the newest archive, no fall-back", res, err)
				}
			})
		}
	}
}

func TestRestoreNewestGood(t *testing.T) {
	older, _ := goodArchive(t, map[string]string{"Default/IndexedDB/a.ldb": "older"})
	newer, newerFiles := goodArchive(t, map[string]string{"Default/IndexedDB/a.ldb": "newer"})
	for _, kind := range historyStores {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.new(t)
			for _, archive := range [][]byte{older, newer} {
				if err := st.Save(t.Context(), "RemoteAuth-test", bytes.NewReader(archive)); err != nil {
					t.Fatal(err)
				}
			}
			versions, err := st.Versions(t.Context(), "RemoteAuth-test")
			if err != nil || len(versions) != 2 {
				t.Fatalf("Versions = %v, %v; want 2 archives", versions, err)
			}
			s := newSession(t, st, nil)
			res, err := s.Restore(t.Context())
			if err != nil || res.FellBack || res.Version != versions[0].ID || res.Skipped != nil {
				t.Fatalf("Restore = %+v, %v; want the newest archive %s", res, err, versions[0].ID)
			}
			if got := readTree(t, s.ProfileDir()); !maps.Equal(got, newerFiles) {
				t.Errorf("restored %v, want %v", got, newerFiles)
			}
			if b, err := s.Backup(t.Context()); err != nil || !b.Unchanged {
				t.Errorf("Backup right after the restore = %+v, %v; want nothing uploaded", b, err)
			}
		})
	}
}

// TestRestoreAllKeptArchivesBad: when every kept archive is refused, Restore fails with the
// newest's error and changes nothing.
func TestRestoreAllKeptArchivesBad(t *testing.T) {
	good, _ := goodArchive(t, map[string]string{"Default/IndexedDB/a.ldb": "login"})
	for _, kind := range historyStores {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.new(t)
			hostile := makeZip(t, zipEntry{name: "/etc/passwd", data: "x"})
			for _, archive := range [][]byte{hostile, good[:len(good)/2]} {
				if err := st.Save(t.Context(), "RemoteAuth-test", bytes.NewReader(archive)); err != nil {
					t.Fatal(err)
				}
			}
			s := newSession(t, st, nil)
			filetree.Write(t, s.ProfileDir(), localProfile)
			before := readTree(t, s.ProfileDir())
			res, err := s.Restore(t.Context())
			if !errors.Is(err, remoteauth.ErrCorruptArchive) || errors.Is(err, remoteauth.ErrUnsafeArchive) {
				t.Errorf("Restore: %v; want the newest archive's error (corrupt), not the older one's (unsafe)", err)
			}
			if len(res.Skipped) != 2 || !errors.Is(res.Skipped[1], remoteauth.ErrUnsafeArchive) {
				t.Errorf("Skipped = %v; want both archives' errors, newest first", res.Skipped)
			}
			if after := readTree(t, s.ProfileDir()); !maps.Equal(before, after) {
				t.Errorf("the local profile changed:\nbefore %v\nafter  %v", before, after)
			}
			if entries, _ := os.ReadDir(filepath.Dir(s.ProfileDir())); len(entries) != 1 {
				t.Errorf("temporary files left in DataPath: %v", entries)
			}
		})
	}
}

// failingHistory wraps a History store; its ExtractVersion of the newest archive fails as a
// network would.
type failingHistory struct {
	historyStore
}

func (f failingHistory) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	versions, err := f.historyStore.Versions(ctx, session)
	if err == nil && len(versions) > 0 && versions[0].ID == id {
		io.WriteString(w, "PK\x03\x04 a few bytes, then the connection drops")
		return fmt.Errorf("failinghistory: extract %s: %w", session, errInjected)
	}
	return f.historyStore.ExtractVersion(ctx, session, id, w)
}

// TestRestoreStoreErrorDoesNotFallBack: a store error on the newest archive fails the restore,
// though an older archive is good.
func TestRestoreStoreErrorDoesNotFallBack(t *testing.T) {
	good, _ := goodArchive(t, map[string]string{"Default/IndexedDB/a.ldb": "login"})
	for _, kind := range historyStores {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.new(t)
			for range 2 {
				if err := st.Save(t.Context(), "RemoteAuth-test", bytes.NewReader(good)); err != nil {
					t.Fatal(err)
				}
			}
			s := newSession(t, failingHistory{st}, nil)
			filetree.Write(t, s.ProfileDir(), localProfile)
			before := readTree(t, s.ProfileDir())
			res, err := s.Restore(t.Context())
			if !errors.Is(err, errInjected) || res.FellBack {
				t.Errorf("Restore = %+v, %v; want the store's error, no fall-back", res, err)
			}
			if after := readTree(t, s.ProfileDir()); !maps.Equal(before, after) {
				t.Errorf("the local profile changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// racingHistory wraps a History store; before its first ExtractVersion, another instance saves
// the session twice, which evicts the archives listed.
type racingHistory struct {
	historyStore
	once  sync.Once
	saves [][]byte
	t     *testing.T
}

func (r *racingHistory) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	r.once.Do(func() {
		for _, archive := range r.saves {
			if err := r.historyStore.Save(ctx, session, bytes.NewReader(archive)); err != nil {
				r.t.Error(err)
			}
		}
	})
	return r.historyStore.ExtractVersion(ctx, session, id, w)
}

// TestRestoreListsAgain: archives evicted between the listing and their download make Restore
// list again and restore the newest, without calling it a fall-back.
func TestRestoreListsAgain(t *testing.T) {
	old, _ := goodArchive(t, map[string]string{"Default/IndexedDB/a.ldb": "old"})
	mid, _ := goodArchive(t, map[string]string{"Default/IndexedDB/a.ldb": "mid"})
	newest, newestFiles := goodArchive(t, map[string]string{"Default/IndexedDB/a.ldb": "newest"})
	for _, kind := range historyStores {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.new(t)
			for range 2 {
				if err := st.Save(t.Context(), "RemoteAuth-test", bytes.NewReader(old)); err != nil {
					t.Fatal(err)
				}
			}
			s := newSession(t, &racingHistory{historyStore: st, saves: [][]byte{mid, newest}, t: t}, nil)
			res, err := s.Restore(t.Context())
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			versions, err := st.Versions(t.Context(), "RemoteAuth-test")
			if err != nil {
				t.Fatal(err)
			}
			if res.FellBack || res.Version != versions[0].ID {
				t.Errorf("Restore = %+v; want the newest archive %s, no fall-back", res, versions[0].ID)
			}
			if got := readTree(t, s.ProfileDir()); !maps.Equal(got, newestFiles) {
				t.Errorf("restored %v, want %v", got, newestFiles)
			}
		})
	}
}

// A store that keeps previous archives lists them newest first; any of them can be fetched by ID.
func ExampleHistory() {
	ctx := context.Background()
	var store remoteauth.Store = memstore.New() // keeps remoteauth.DefaultKeep (2) archives
	for _, archive := range []string{"first", "second", "third"} {
		if err := store.Save(ctx, "RemoteAuth-alice", strings.NewReader(archive)); err != nil {
			panic(err)
		}
	}
	h, ok := store.(remoteauth.History)
	if !ok {
		fmt.Println("this store keeps no history")
		return
	}
	versions, err := h.Versions(ctx, "RemoteAuth-alice")
	if err != nil {
		panic(err)
	}
	for _, v := range versions {
		var buf bytes.Buffer
		if err := h.ExtractVersion(ctx, "RemoteAuth-alice", v.ID, &buf); err != nil {
			panic(err)
		}
		fmt.Printf("ID %s: %q\n", v.ID, buf.String())
	}
	// Output:
	// ID 3: "third"
	// ID 2: "second"
}
