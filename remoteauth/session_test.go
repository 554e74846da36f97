package remoteauth_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/remoteauth"
	"github.com/wwebstore/wwebstore/stores/memory"
)

// readTree returns every regular file under dir (slash paths → content), with its mode.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = fmt.Sprintf("%v %s", info.Mode().Perm(), b)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files
}

// sampleProfile is a small profile: kept files, including one larger than what the engine buffers
// (so that it is streamed) and incompressible data, plus a cache the backup leaves out.
func sampleProfile() map[string]string {
	big := make([]byte, 9<<20)
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	noise := make([]byte, 300<<10)
	x := uint64(42)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	return map[string]string{
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/CURRENT":         "MANIFEST-000001\n",
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/MANIFEST-000001": "manifest",
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000005.ldb":      string(noise),
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log":      strings.Repeat("log record ", 1000),
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/LOCK":            "",
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob/1/00/7":             string(big),
		"Default/Local Storage/leveldb/000003.log":                                     "WAToken1=secret",
		"Default/Cache/Cache_Data/f_000001":                                            "cached, not kept",
		"Local State":                                                                  "{}",
	}
}

// keptOnly drops the files a backup leaves out.
func keptOnly(files map[string]string) map[string]string {
	kept := map[string]string{}
	for name, data := range files {
		if strings.HasPrefix(name, "Default/IndexedDB/") || strings.HasPrefix(name, "Default/Local Storage/") {
			kept[name] = data
		}
	}
	return kept
}

func newSession(t *testing.T, store remoteauth.Store, opts *remoteauth.Options) *remoteauth.Session {
	t.Helper()
	o := remoteauth.Options{ClientID: "test", DataPath: t.TempDir()}
	if opts != nil {
		o = *opts
		if o.DataPath == "" {
			o.DataPath = t.TempDir()
		}
	}
	s, err := remoteauth.NewSession(store, &o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	store := memstore.New()
	src := newSession(t, store, nil)
	files := sampleProfile()
	filetree.Write(t, src.ProfileDir(), files)
	want := readTree(t, src.ProfileDir())

	res, err := src.Backup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Unchanged || res.Files != 7 || res.ArchiveSize == 0 || res.Attempts != 1 || res.Session != "RemoteAuth-test" {
		t.Errorf("BackupResult = %+v", res)
	}
	if err := src.Close(t.Context()); err != nil { // releases the session lease for dst
		t.Fatal(err)
	}

	dst := newSession(t, store, nil)
	rr, err := dst.Restore(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !rr.Found || rr.Files != 7 || rr.ArchiveSize != res.ArchiveSize {
		t.Errorf("RestoreResult = %+v, backup %+v", rr, res)
	}
	if got := readTree(t, dst.ProfileDir()); !maps.Equal(got, keptOnly(want)) {
		t.Errorf("restored files differ:\n got %v\nwant %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(keptOnly(want))))
	}
	leftovers, _ := os.ReadDir(filepath.Dir(dst.ProfileDir()))
	if len(leftovers) != 1 {
		t.Errorf("DataPath holds %d entries after a restore, want only the profile: %v", len(leftovers), leftovers)
	}
}

// TestArchiveHasNoDataDescriptors reads an archive the way a streaming unzipper does (the one
// whatsapp-web.js uses): local header after local header, trusting the sizes in each. Every entry
// must carry its CRC and sizes there, with no data descriptor after its data.
func TestArchiveHasNoDataDescriptors(t *testing.T) {
	store := memstore.New()
	s := newSession(t, store, nil)
	filetree.Write(t, s.ProfileDir(), sampleProfile())
	if _, err := s.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := store.Extract(t.Context(), s.Name(), &archive); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(archive.Bytes()), int64(archive.Len()))
	if err != nil {
		t.Fatal(err)
	}
	b := archive.Bytes()
	off := 0
	for i, f := range zr.File {
		if got := binary.LittleEndian.Uint32(b[off:]); got != 0x04034b50 {
			t.Fatalf("entry %d (%s): no local header at offset %d (found %#x): a data descriptor or a gap precedes it", i, f.Name, off, got)
		}
		flags := binary.LittleEndian.Uint16(b[off+6:])
		crc := binary.LittleEndian.Uint32(b[off+14:])
		csize := binary.LittleEndian.Uint32(b[off+18:])
		usize := binary.LittleEndian.Uint32(b[off+22:])
		nameLen := int(binary.LittleEndian.Uint16(b[off+26:]))
		extraLen := int(binary.LittleEndian.Uint16(b[off+28:]))
		if flags&0x8 != 0 {
			t.Errorf("%s: the data-descriptor flag is set", f.Name)
		}
		if name := string(b[off+30 : off+30+nameLen]); name != f.Name {
			t.Errorf("local header %d names %q, the central directory %q", i, name, f.Name)
		}
		if crc != f.CRC32 || uint64(csize) != f.CompressedSize64 || uint64(usize) != f.UncompressedSize64 {
			t.Errorf("%s: local header crc/csize/usize %x/%d/%d, central directory %x/%d/%d", f.Name, crc, csize, usize, f.CRC32, f.CompressedSize64, f.UncompressedSize64)
		}
		off += 30 + nameLen + extraLen + int(csize)
	}
	if got := binary.LittleEndian.Uint32(b[off:]); got != 0x02014b50 {
		t.Errorf("after the last entry: %#x, want the central directory", got)
	}
	// Incompressible data is stored, compressible data deflated.
	methods := map[string]uint16{}
	for _, f := range zr.File {
		methods[strings.TrimPrefix(f.Name, "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.")] = f.Method
	}
	if methods["leveldb/000005.ldb"] != zip.Store || methods["leveldb/000003.log"] != zip.Deflate || methods["blob/1/00/7"] != zip.Deflate {
		t.Errorf("methods = %v; want 000005.ldb stored, the others deflated", methods)
	}
}

func TestRestoreWithoutRemoteKeepsLocalProfile(t *testing.T) {
	s := newSession(t, memstore.New(), nil)
	filetree.Write(t, s.ProfileDir(), sampleProfile())
	before := readTree(t, s.ProfileDir())
	res, err := s.Restore(t.Context())
	if err != nil || res.Found {
		t.Fatalf("Restore = %+v, %v; want not found, no error", res, err)
	}
	if after := readTree(t, s.ProfileDir()); !maps.Equal(before, after) {
		t.Error("the local profile changed")
	}
}

// faultStore wraps a real store and fails where a test says.
type faultStore struct {
	remoteauth.Store
	saveFailures  atomic.Int32 // Saves left to fail
	extractAfter  int64        // if > 0: Extract fails after writing this many bytes
	saves         atomic.Int32 // Saves started
	inSave        atomic.Int32
	maxConcurrent atomic.Int32
	bytesSaved    atomic.Int64
}

var errInjected = errors.New("injected store failure")

func (f *faultStore) Save(ctx context.Context, session string, r io.Reader) error {
	f.saves.Add(1)
	n := f.inSave.Add(1)
	defer f.inSave.Add(-1)
	for {
		m := f.maxConcurrent.Load()
		if n <= m || f.maxConcurrent.CompareAndSwap(m, n) {
			break
		}
	}
	if f.saveFailures.Add(-1) >= 0 {
		io.CopyN(io.Discard, r, 1000) // fail mid-stream, after reading some
		return fmt.Errorf("faultstore: save %s: %w", session, errInjected)
	}
	cr := &countReader{r: r}
	err := f.Store.Save(ctx, session, cr)
	f.bytesSaved.Add(cr.n)
	return err
}

func (f *faultStore) Extract(ctx context.Context, session string, w io.Writer) error {
	if f.extractAfter > 0 {
		var buf bytes.Buffer
		if err := f.Store.Extract(ctx, session, &buf); err != nil {
			return err
		}
		w.Write(buf.Bytes()[:min(int64(buf.Len()), f.extractAfter)])
		return fmt.Errorf("faultstore: extract %s: %w", session, errInjected)
	}
	return f.Store.Extract(ctx, session, w)
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestRestoreFailuresLeaveProfileUntouched restores from a store that fails half-way and from
// stores that hold bad archives: the local profile must stay exactly as it was.
func TestRestoreFailuresLeaveProfileUntouched(t *testing.T) {
	goodStore := memstore.New()
	src := newSession(t, goodStore, nil)
	filetree.Write(t, src.ProfileDir(), sampleProfile())
	if _, err := src.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(t.Context()); err != nil { // releases the session lease
		t.Fatal(err)
	}
	var good bytes.Buffer
	if err := goodStore.Extract(t.Context(), src.Name(), &good); err != nil {
		t.Fatal(err)
	}
	withArchive := func(b []byte) remoteauth.Store {
		s := memstore.New()
		if err := s.Save(t.Context(), "RemoteAuth-test", bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	corrupt := bytes.Clone(good.Bytes())
	corrupt[len(corrupt)/3] ^= 0x55
	tests := []struct {
		name   string
		store  remoteauth.Store
		limits remoteauth.ExtractLimits
		want   error
	}{
		{"store fails mid-stream", &faultStore{Store: goodStore, extractAfter: int64(good.Len() / 2)}, remoteauth.ExtractLimits{}, errInjected},
		{"truncated archive", withArchive(good.Bytes()[:good.Len()-100]), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"flipped byte", withArchive(corrupt), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"hostile archive", withArchive(makeZip(t, zipEntry{name: "Default/IndexedDB/ok", data: "x"}, zipEntry{name: "../../escape", data: "x"})), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"archive over MaxArchiveSize", goodStore, remoteauth.ExtractLimits{MaxArchiveSize: 1 << 10}, remoteauth.ErrArchiveTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.store, &remoteauth.Options{ClientID: "test", Limits: tt.limits})
			filetree.Write(t, s.ProfileDir(), map[string]string{
				"Default/IndexedDB/local.ldb":  "the local login",
				"Default/Local Storage/x.log":  "local storage",
				"Default/Cache/Cache_Data/f_1": "cache",
			})
			before := readTree(t, s.ProfileDir())
			_, err := s.Restore(t.Context())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Restore: got %v, want an error wrapping %v", err, tt.want)
			}
			if after := readTree(t, s.ProfileDir()); !maps.Equal(before, after) {
				t.Errorf("the local profile changed:\nbefore %v\nafter  %v", before, after)
			}
			entries, _ := os.ReadDir(filepath.Dir(s.ProfileDir()))
			if len(entries) != 1 {
				t.Errorf("temporary files left in DataPath: %v", entries)
			}
		})
	}
}

func TestRestoreReplacesLocalProfile(t *testing.T) {
	store := memstore.New()
	src := newSession(t, store, nil)
	filetree.Write(t, src.ProfileDir(), sampleProfile())
	if _, err := src.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(t.Context()); err != nil { // releases the session lease for dst
		t.Fatal(err)
	}
	dst := newSession(t, store, nil)
	filetree.Write(t, dst.ProfileDir(), map[string]string{"Default/IndexedDB/stale.ldb": "stale"})
	// A restore killed half-way left these behind; the next restore removes them.
	dataPath := filepath.Dir(dst.ProfileDir())
	filetree.Write(t, dataPath, map[string]string{
		".RemoteAuth-test.restore-123.zip": "partial",
		".RemoteAuth-test.old-9/x":         "old",
		".RemoteAuth-other.restore-1.zip":  "another session's: kept",
	})
	if _, err := dst.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := readTree(t, dst.ProfileDir()), keptOnly(readTree(t, src.ProfileDir())); !maps.Equal(got, want) {
		t.Errorf("restored %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	entries, _ := os.ReadDir(dataPath)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{".RemoteAuth-other.restore-1.zip", "RemoteAuth-test"}; !slices.Equal(names, want) {
		t.Errorf("DataPath holds %v, want %v", names, want)
	}
}

// TestRestoreRecoversInterruptedSwap: a restore killed between its two renames left the old
// profile aside and none in place. The next restore puts it back, so that a failing store does not
// leave the session without its profile.
func TestRestoreRecoversInterruptedSwap(t *testing.T) {
	store := &faultStore{Store: memstore.New(), extractAfter: 10}
	s := newSession(t, store, nil)
	dataPath := filepath.Dir(s.ProfileDir())
	filetree.Write(t, dataPath, map[string]string{".RemoteAuth-test.old-42/Default/IndexedDB/x.ldb": "the login"})
	if err := store.Store.Save(t.Context(), s.Name(), strings.NewReader("some archive")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restore(t.Context()); !errors.Is(err, errInjected) {
		t.Fatalf("Restore = %v, want the store's failure", err)
	}
	got := readTree(t, s.ProfileDir())
	if want := map[string]string{"Default/IndexedDB/x.ldb": "-rw------- the login"}; !maps.Equal(got, want) {
		t.Errorf("profile after the failed restore = %v, want the profile set aside put back: %v", got, want)
	}
}

func TestBackupSkipsUnchangedProfile(t *testing.T) {
	store := &faultStore{Store: memstore.New()}
	s := newSession(t, store, nil)
	filetree.Write(t, s.ProfileDir(), sampleProfile())
	if _, err := s.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	sent := store.bytesSaved.Load()
	res, err := s.Backup(t.Context())
	if err != nil || !res.Unchanged || res.ArchiveSize != 0 || res.Attempts != 0 {
		t.Fatalf("second Backup = %+v, %v; want unchanged, nothing sent", res, err)
	}
	if store.saves.Load() != 1 || store.bytesSaved.Load() != sent {
		t.Errorf("the store saw %d saves, %d bytes; want 1 save, %d bytes", store.saves.Load(), store.bytesSaved.Load(), sent)
	}
	filetree.Write(t, s.ProfileDir(), map[string]string{"Default/Local Storage/leveldb/000004.log": "new"})
	if res, err := s.Backup(t.Context()); err != nil || res.Unchanged {
		t.Fatalf("Backup after a change = %+v, %v; want a save", res, err)
	}
	// A cache change is not a change of the session.
	filetree.Write(t, s.ProfileDir(), map[string]string{"Default/Cache/Cache_Data/f_000002": "new cache"})
	if res, err := s.Backup(t.Context()); err != nil || !res.Unchanged {
		t.Fatalf("Backup after a cache change = %+v, %v; want unchanged", res, err)
	}

	// A restored profile matches the remote archive: its first backup uploads nothing.
	other := newSession(t, store, nil)
	if _, err := other.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res, err := other.Backup(t.Context()); err != nil || !res.Unchanged {
		t.Fatalf("Backup after Restore = %+v, %v; want unchanged", res, err)
	}
}

func TestBackupRefusesEmptyProfile(t *testing.T) {
	store := memstore.New()
	s := newSession(t, store, nil)
	filetree.Write(t, s.ProfileDir(), map[string]string{"Default/Cache/x": "cache only"})
	if _, err := s.Backup(t.Context()); !errors.Is(err, remoteauth.ErrNothingToBackUp) {
		t.Fatalf("Backup of a profile without session data: %v, want ErrNothingToBackUp", err)
	}
	if ok, err := store.SessionExists(t.Context(), s.Name()); ok || err != nil {
		t.Errorf("SessionExists = %v, %v after a refused backup", ok, err)
	}
}

// TestBackupRetriesStoreFailures runs in a synctest bubble: the backoff's timers run on the
// bubble's fake clock, so the test takes no real time.
func TestBackupRetriesStoreFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultStore{Store: memstore.New()}
		var events []remoteauth.BackupResult
		s := newSession(t, store, &remoteauth.Options{
			ClientID: "test",
			Retry:    remoteauth.RetryPolicy{MaxAttempts: 4, InitialDelay: time.Second, MaxDelay: 2 * time.Second},
			OnBackup: func(r remoteauth.BackupResult) { events = append(events, r) },
		})
		filetree.Write(t, s.ProfileDir(), sampleProfile())

		// Three failures, then a success.
		store.saveFailures.Store(3)
		start := time.Now()
		res, err := s.Backup(t.Context())
		if err != nil || res.Attempts != 4 {
			t.Fatalf("Backup = %+v, %v; want success on the 4th attempt", res, err)
		}
		// Waits of 1 s, 2 s and 2 s (capped), each ±20 %.
		if waited := time.Since(start); waited < 4*time.Second || waited > 6*time.Second {
			t.Errorf("backoff waited %v, want about 5 s", waited)
		}
		var saved bytes.Buffer
		if err := store.Extract(t.Context(), s.Name(), &saved); err != nil {
			t.Fatal(err)
		}

		// Four failures: the backup fails, reports it, and the previous archive stays.
		filetree.Write(t, s.ProfileDir(), map[string]string{"Default/IndexedDB/new.ldb": "changed"})
		store.saveFailures.Store(4)
		res, err = s.Backup(t.Context())
		if !errors.Is(err, errInjected) || !errors.Is(res.Err, errInjected) || res.Attempts != 4 {
			t.Fatalf("Backup = %+v, %v; want the store's error after 4 attempts", res, err)
		}
		var after bytes.Buffer
		if err := store.Extract(t.Context(), s.Name(), &after); err != nil || !bytes.Equal(after.Bytes(), saved.Bytes()) {
			t.Fatalf("the previous archive changed after failed saves (err %v)", err)
		}
		if len(events) != 2 || events[0].Err != nil || events[1].Err == nil {
			t.Errorf("OnBackup events = %+v", events)
		}

		// The failed backup is not mistaken for a saved one: the next tries again.
		store.saveFailures.Store(0)
		if res, err := s.Backup(t.Context()); err != nil || res.Unchanged {
			t.Fatalf("Backup after failures = %+v, %v; want a save", res, err)
		}
	})
}

func TestBackupStopsRetryingAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultStore{Store: memstore.New()}
		store.saveFailures.Store(100)
		s := newSession(t, store, nil)
		filetree.Write(t, s.ProfileDir(), sampleProfile())
		ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
		defer cancel()
		_, err := s.Backup(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errInjected) {
			t.Fatalf("Backup = %v; want the deadline and the last store error", err)
		}
		if n := store.saves.Load(); n != 2 {
			t.Errorf("%d saves before the deadline, want 2 (at 0 s and about 1 s)", n)
		}
	})
}

func TestBackupsDoNotOverlap(t *testing.T) {
	store := &faultStore{Store: memstore.New()}
	s := newSession(t, store, nil)
	filetree.Write(t, s.ProfileDir(), sampleProfile())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			filetree.Write(t, s.ProfileDir(), map[string]string{fmt.Sprintf("Default/IndexedDB/%d.ldb", i): "x"})
			if _, err := s.Backup(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if m := store.maxConcurrent.Load(); m != 1 {
		t.Errorf("%d saves ran at once, want 1", m)
	}
}

// TestRunBacksUpPeriodically drives Run's ticker with synctest's fake clock.
func TestRunBacksUpPeriodically(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultStore{Store: memstore.New()}
		var mu sync.Mutex
		var events []remoteauth.BackupResult
		s := newSession(t, store, &remoteauth.Options{
			ClientID:       "test",
			BackupInterval: time.Minute,
			OnBackup: func(r remoteauth.BackupResult) {
				mu.Lock()
				events = append(events, r)
				mu.Unlock()
			},
		})
		filetree.Write(t, s.ProfileDir(), sampleProfile())
		ctx, cancel := context.WithCancel(t.Context())
		runErr := make(chan error, 1)
		go func() { runErr <- s.Run(ctx) }()

		synctest.Wait() // the first backup is taken at once
		if n := store.saves.Load(); n != 1 {
			t.Fatalf("%d saves after Run started, want 1", n)
		}
		time.Sleep(time.Minute) // fake time: one tick, profile unchanged
		synctest.Wait()
		if n := store.saves.Load(); n != 1 {
			t.Fatalf("%d saves after an unchanged tick, want 1", n)
		}
		filetree.Write(t, s.ProfileDir(), map[string]string{"Default/IndexedDB/new.ldb": "x"})
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := store.saves.Load(); n != 2 {
			t.Fatalf("%d saves after a changed tick, want 2", n)
		}
		// A failing tick is reported and does not stop Run.
		filetree.Write(t, s.ProfileDir(), map[string]string{"Default/IndexedDB/newer.ldb": "x"})
		store.saveFailures.Store(100)
		time.Sleep(time.Minute)
		synctest.Wait()
		if err := s.Run(ctx); err == nil {
			t.Error("a second Run while one runs: no error")
		}
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run returned %v after its context ended, want nil", err)
		}
		mu.Lock()
		defer mu.Unlock()
		var unchanged, failed int
		for _, e := range events {
			if e.Unchanged {
				unchanged++
			}
			if e.Err != nil {
				failed++
			}
		}
		if unchanged != 1 || failed != 1 || len(events) < 4 {
			t.Errorf("events: %d unchanged, %d failed of %d; want 1, 1, at least 4", unchanged, failed, len(events))
		}
	})
}

func TestCloseTakesFinalBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultStore{Store: memstore.New()}
		s := newSession(t, store, &remoteauth.Options{ClientID: "test", BackupInterval: time.Hour})
		filetree.Write(t, s.ProfileDir(), sampleProfile())
		go s.Run(t.Context())
		synctest.Wait()
		filetree.Write(t, s.ProfileDir(), map[string]string{"Default/Local Storage/leveldb/000009.log": "flushed at close"})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if n := store.saves.Load(); n != 2 {
			t.Errorf("%d saves, want 2 (Run's first and Close's final)", n)
		}
		restored := newSession(t, store, nil)
		if _, err := restored.Restore(t.Context()); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(restored.ProfileDir(), "Default/Local Storage/leveldb/000009.log")); err != nil || string(b) != "flushed at close" {
			t.Errorf("the final backup lacks the last change: %q, %v", b, err)
		}
		for name, err := range map[string]error{
			"Backup": func() error { _, err := s.Backup(t.Context()); return err }(),
			"Run":    s.Run(t.Context()),
			"Close":  s.Close(t.Context()),
			"Delete": s.Delete(t.Context()),
		} {
			if !errors.Is(err, remoteauth.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	})
}

func TestCloseHonoursDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultStore{Store: memstore.New()}
		store.saveFailures.Store(100)
		s := newSession(t, store, &remoteauth.Options{ClientID: "test", Retry: remoteauth.RetryPolicy{MaxAttempts: 100}})
		filetree.Write(t, s.ProfileDir(), sampleProfile())
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		start := time.Now()
		err := s.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want the deadline", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("Close took %v, past its 30 s deadline", d)
		}
	})
}

func TestDeleteRemovesRemoteAndLocal(t *testing.T) {
	store := memstore.New()
	s := newSession(t, store, nil)
	filetree.Write(t, s.ProfileDir(), sampleProfile())
	if _, err := s.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ok, err := store.SessionExists(t.Context(), s.Name()); ok || err != nil {
		t.Errorf("SessionExists after Delete = %v, %v", ok, err)
	}
	if _, err := os.Stat(s.ProfileDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the local profile is still there: %v", err)
	}
}

func TestNewSessionOptions(t *testing.T) {
	store := memstore.New()
	tests := []struct {
		name    string
		opts    *remoteauth.Options
		wantErr string
		is      error
	}{
		{"defaults", nil, "", nil},
		{"bad clientId", &remoteauth.Options{ClientID: "a/b"}, "only alphanumeric", remoteauth.ErrInvalidSession},
		{"short interval", &remoteauth.Options{BackupInterval: 59 * time.Second}, "shorter than the minimum 1m0s", nil},
		{"bad compression", &remoteauth.Options{Compression: 10}, "not a deflate level", nil},
		{"unsafe kept dir", &remoteauth.Options{KeptDirs: []string{"../x"}}, `kept directory "../x"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := remoteauth.NewSession(store, tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.Name() != "RemoteAuth" || s.ProfileDir() != filepath.Join(".wwebjs_auth", "RemoteAuth") {
					t.Errorf("defaults: name %q, profile %q", s.Name(), s.ProfileDir())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.is)
			}
		})
	}
	if _, err := remoteauth.NewSession(nil, nil); err == nil {
		t.Error("NewSession(nil store): no error")
	}
}
