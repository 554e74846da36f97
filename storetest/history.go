package storetest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// runHistory runs the History group: see the package documentation.
func runHistory(t *testing.T, newStore func(t *testing.T) remoteauth.Store, size func(int64) int64) {
	t.Run("History", func(t *testing.T) {
		st := newStore(t)
		h, ok := st.(remoteauth.History)
		if !ok {
			t.Skipf("%T does not implement remoteauth.History", st)
		}
		if _, err := h.Versions(t.Context(), "RemoteAuth-probe"); errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("%T implements remoteauth.History but its Versions says it keeps no history (a wrapper of a store without History): %v", st, err)
		}
		for _, s := range []struct {
			name string
			test func(t *testing.T, st remoteauth.Store, h history)
		}{
			{"Missing", testHistoryMissing},
			{"KeepsLast", testHistoryKeepsLast},
			{"Isolation", testHistoryIsolation},
			{"Delete", testHistoryDelete},
			{"SaveReaderError", testHistorySaveFails(false)},
			{"SaveCanceled", testHistorySaveFails(true)},
			{"UnknownID", testHistoryUnknownID},
			{"InvalidNames", testHistoryInvalidNames},
			{"CanceledContext", testHistoryCanceledContext},
			{"Concurrent", testHistoryConcurrent},
			{"RestoreFallsBack", testHistoryRestoreFallsBack},
		} {
			t.Run(s.name, func(t *testing.T) {
				st := newStore(t)
				s.test(t, st, history{st.(remoteauth.History), size})
			})
		}
	})
}

// history is the History under test, with Options.StoredSize.
type history struct {
	remoteauth.History
	size func(n int64) int64
}

// keep is how many archives of a session a store made by newStore keeps: the default.
const keep = remoteauth.DefaultKeep

func testHistoryMissing(t *testing.T, st remoteauth.Store, h history) {
	const session = "RemoteAuth-nohistory"
	checkVersions(t, st, h, session, nil)
	checkVersionMissing(t, h, session, "1")
	save(t, st, "RemoteAuth-other", content{seed: 600, size: 1000})
	checkVersions(t, st, h, session, nil)
}

// testHistoryKeepsLast saves keep+3 archives one after the other and checks, after each Save,
// that the last keep are listed newest first, byte for byte, with IDs that do not change, and
// that evicted IDs are gone.
func testHistoryKeepsLast(t *testing.T, st remoteauth.Store, h history) {
	const session = "RemoteAuth-history"
	var saved []content
	ids := map[content]string{}
	for i := range keep + 3 {
		c := content{seed: 610 + uint64(i), size: 300*kiB + int64(i)*4099}
		save(t, st, session, c)
		saved = append(saved, c)
		want := slices.Clone(saved[max(0, len(saved)-keep):])
		slices.Reverse(want)
		got := checkVersions(t, st, h, session, want)
		for j, v := range got {
			if old, ok := ids[want[j]]; ok && old != v.ID {
				t.Errorf("after Save %d: the archive of %s has ID %q, but had %q before: IDs must not change", i+1, want[j], v.ID, old)
			}
			ids[want[j]] = v.ID
		}
		if evicted := len(saved) - keep - 1; evicted >= 0 {
			checkVersionMissing(t, h, session, ids[saved[evicted]])
		}
		if t.Failed() {
			t.Fatalf("the failures above followed Save %d of %d", i+1, keep+3)
		}
	}
}

func testHistoryIsolation(t *testing.T, st remoteauth.Store, h history) {
	names := []string{"a", "a-b", "A", "RemoteAuth-a"}
	archives := map[string][]content{}
	for i, name := range names {
		for j := range keep {
			c := content{seed: 620 + uint64(i*keep+j), size: 1000 + int64(i*keep+j)*37}
			save(t, st, name, c)
			archives[name] = append([]content{c}, archives[name]...)
		}
	}
	ids := map[string][]string{}
	for _, name := range names {
		for _, v := range checkVersions(t, st, h, name, archives[name]) {
			ids[name] = append(ids[name], v.ID)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// An ID of another session either names none of this session's archives or, if the store
	// numbers each session's archives on its own, this session's own archive of that ID.
	for _, name := range names {
		for _, other := range names {
			for _, id := range ids[other] {
				if other != name && !slices.Contains(ids[name], id) {
					checkVersionMissing(t, h, name, id)
				}
			}
		}
	}
	del(t, st, "a")
	checkVersions(t, st, h, "a", nil)
	for _, name := range names[1:] {
		checkVersions(t, st, h, name, archives[name])
	}
}

func testHistoryDelete(t *testing.T, st remoteauth.Store, h history) {
	const session = "RemoteAuth-historydelete"
	var want []content
	for i := range keep + 1 {
		c := content{seed: 640 + uint64(i), size: 100*kiB + int64(i)}
		save(t, st, session, c)
		want = append([]content{c}, want...)
	}
	old := checkVersions(t, st, h, session, want[:keep])
	del(t, st, session)
	checkVersions(t, st, h, session, nil)
	for _, v := range old {
		checkVersionMissing(t, h, session, v.ID)
	}
	// Saved again, the session starts a new history: nothing from before the Delete comes back.
	c := content{seed: 650, size: 1000}
	save(t, st, session, c)
	checkVersions(t, st, h, session, []content{c})
}

// testHistorySaveFails checks that a Save that fails (r fails, or ctx is cancelled, after
// failAfter bytes) neither adds nor evicts an archive, for a session with no archive and for
// one with keep archives.
func testHistorySaveFails(cancelled bool) func(*testing.T, remoteauth.Store, history) {
	return func(t *testing.T, st remoteauth.Store, h history) {
		const fresh, session = "RemoteAuth-historyfresh", "RemoteAuth-historyfails"
		failSave := func(session string, seed uint64) {
			t.Helper()
			c := content{seed: seed, size: failAfter + miB}
			if cancelled {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				err := st.Save(ctx, session, &cancelingReader{r: c.reader(), n: failAfter, cancel: cancel})
				checkError(t, err, context.Canceled, fmt.Sprintf("Save(%q) with ctx cancelled after %d bytes", session, failAfter), session)
				return
			}
			err := st.Save(t.Context(), session, &failingReader{r: c.reader(), n: failAfter, err: errRead})
			checkError(t, err, errRead, fmt.Sprintf("Save(%q) with a reader failing after %d bytes", session, failAfter), session)
		}
		failSave(fresh, 660)
		checkVersions(t, st, h, fresh, nil)

		var want []content
		for i := range keep {
			c := content{seed: 661 + uint64(i), size: miB + int64(i)*7}
			save(t, st, session, c)
			want = append([]content{c}, want...)
		}
		before := checkVersions(t, st, h, session, want)
		failSave(session, 670)
		after := checkVersions(t, st, h, session, want)
		if !slices.Equal(versionIDs(before), versionIDs(after)) {
			t.Errorf("a failed Save changed the IDs of the kept archives from %q to %q", versionIDs(before), versionIDs(after))
		}
	}
}

func testHistoryUnknownID(t *testing.T, st remoteauth.Store, h history) {
	const session = "RemoteAuth-unknownid"
	var want []content
	for i := range keep {
		c := content{seed: 680 + uint64(i), size: 1000 + int64(i)}
		save(t, st, session, c)
		want = append([]content{c}, want...)
	}
	known := versionIDs(checkVersions(t, st, h, session, want))
	unknown := []string{"", "0", "-1", "no-such-id", "../" + known[0], known[0] + "/..", known[0] + "0", "0" + known[0],
		known[0] + " ", strings.Repeat("9", 40), "a\x00", "%2e%2e"}
	for _, id := range unknown {
		if !slices.Contains(known, id) {
			checkVersionMissing(t, h, session, id)
		}
	}
	checkVersions(t, st, h, session, want)
}

func testHistoryInvalidNames(t *testing.T, _ remoteauth.Store, h history) {
	for _, name := range []string{"", "..", "a/b", "a.b", "é", strings.Repeat("a", remoteauth.MaxSessionNameLen+1)} {
		if _, err := h.Versions(t.Context(), name); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("Versions(%q): error %v, want one wrapping remoteauth.ErrInvalidSession", name, err)
		}
		var w countWriter
		if err := h.ExtractVersion(t.Context(), name, "1", &w); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("ExtractVersion(%q): error %v, want one wrapping remoteauth.ErrInvalidSession", name, err)
		}
		if w.n != 0 {
			t.Errorf("ExtractVersion(%q) wrote %d bytes, want none", name, w.n)
		}
	}
}

func testHistoryCanceledContext(t *testing.T, st remoteauth.Store, h history) {
	const session = "RemoteAuth-historycanceled"
	c := content{seed: 690, size: 10 * kiB}
	save(t, st, session, c)
	id := versionIDs(checkVersions(t, st, h, session, []content{c}))[0]
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := h.Versions(ctx, session)
	checkError(t, err, context.Canceled, fmt.Sprintf("Versions(%q) with a cancelled ctx", session), session)
	var w countWriter
	err = h.ExtractVersion(ctx, session, id, &w)
	checkError(t, err, context.Canceled, fmt.Sprintf("ExtractVersion(%q, %q) with a cancelled ctx", session, id), session)
	checkVersions(t, st, h, session, []content{c})
}

// testHistoryConcurrent runs Saves of one session one after another in several goroutines,
// while others list and extract its kept archives. Every listing holds 1 to keep distinct IDs,
// every ExtractVersion writes one of the inputs whole or fails with ErrNotFound having written
// nothing (its archive was evicted), and in the end the last keep archives are distinct inputs,
// whole, with the one Extract returns first.
func testHistoryConcurrent(t *testing.T, st remoteauth.Store, h history) {
	const session, savers, saves, readers = "RemoteAuth-historyrace", 4, 3, 2
	inputs := make([]content, savers*saves)
	sums := map[[sha256.Size]byte]bool{}
	for i := range inputs {
		inputs[i] = content{seed: 700 + uint64(i), size: 256*kiB + int64(i)*1021}
		sums[inputs[i].sum()] = true
	}
	var savesWG, readersWG sync.WaitGroup
	done := make(chan struct{})
	for g := range savers {
		savesWG.Go(func() {
			for i := range saves {
				c := inputs[g*saves+i]
				if err := st.Save(t.Context(), session, c.reader()); err != nil {
					t.Errorf("concurrent Save(%q, %s): %v", session, c, err)
					return
				}
			}
		})
	}
	for range readers {
		readersWG.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				versions, err := h.Versions(t.Context(), session)
				if err != nil {
					t.Errorf("Versions(%q) during Saves: %v", session, err)
					return
				}
				if len(versions) > keep || hasDuplicateIDs(versions) {
					t.Errorf("Versions(%q) during Saves listed %q: want at most %d distinct IDs", session, versionIDs(versions), keep)
					return
				}
				for _, v := range versions {
					w := newHashWriter()
					err := h.ExtractVersion(t.Context(), session, v.ID, w)
					switch {
					case errors.Is(err, remoteauth.ErrNotFound) && w.n == 0:
						// evicted since it was listed
					case err != nil:
						t.Errorf("ExtractVersion(%q, %q) during Saves: %v (after writing %d bytes)", session, v.ID, err, w.n)
						return
					case !sums[w.sum()]:
						t.Errorf("ExtractVersion(%q, %q) during Saves wrote %d bytes that are none of the saved archives", session, v.ID, w.n)
						return
					}
				}
			}
		})
	}
	savesWG.Wait()
	close(done)
	readersWG.Wait()

	versions, err := h.Versions(t.Context(), session)
	if err != nil {
		t.Fatalf("Versions(%q): %v", session, err)
	}
	if len(versions) != keep || hasDuplicateIDs(versions) {
		t.Fatalf("Versions(%q) after %d concurrent Saves listed %q, want %d distinct IDs", session, len(inputs), versionIDs(versions), keep)
	}
	seen := map[[sha256.Size]byte]bool{}
	for i, v := range versions {
		w := newHashWriter()
		if err := h.ExtractVersion(t.Context(), session, v.ID, w); err != nil {
			t.Errorf("ExtractVersion(%q, %q): %v", session, v.ID, err)
			continue
		}
		sum := w.sum()
		switch {
		case !sums[sum]:
			t.Errorf("ExtractVersion(%q, %q) wrote %d bytes that are none of the saved archives", session, v.ID, w.n)
		case seen[sum]:
			t.Errorf("Versions(%q) lists the same archive twice (%q)", session, versionIDs(versions))
		case i == 0:
			cur := newHashWriter()
			if err := st.Extract(t.Context(), session, cur); err != nil || cur.sum() != sum {
				t.Errorf("Extract(%q) = %d bytes, %v; want the archive %q that Versions lists first", session, cur.n, err, v.ID)
			}
		}
		seen[sum] = true
	}
}

// testHistoryRestoreFallsBack backs up a small profile through a remoteauth.Session over st, then
// saves a copy of that archive with one byte of a file's data flipped through Store.Save: a fresh
// Session restoring into a fresh DataPath refuses the newest archive (its CRC does not match),
// restores the previous one, reports FellBack with the newest archive's error, and logs a warning.
func testHistoryRestoreFallsBack(t *testing.T, st remoteauth.Store, h history) {
	noise, err := io.ReadAll(content{seed: 720, size: 40 * kiB}.reader())
	if err != nil {
		t.Fatal(err)
	}
	// The incompressible file makes most of the archive; the flipped byte lands in its data,
	// where only the CRC catches it.
	const noiseFile = "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log"
	files := map[string]string{
		noiseFile: string(noise),
		"Default/Local Storage/leveldb/000004.log": "local storage",
	}
	src := newFallbackSession(t, st, nil)
	filetree.Write(t, src.ProfileDir(), files)
	if res, err := src.Backup(t.Context()); err != nil || res.Unchanged {
		t.Fatalf("Session.Backup = %+v, %v; want an upload", res, err)
	}
	// Abandon releases the Session's lease (if st is a Leaser) without another backup.
	if err := src.Abandon(t.Context()); err != nil {
		t.Fatalf("Session.Abandon: %v", err)
	}
	var good bytes.Buffer
	if err := st.Extract(t.Context(), src.Name(), &good); err != nil {
		t.Fatalf("Extract(%q) of the Session's backup: %v", src.Name(), err)
	}
	bad := flipFileByte(t, good.Bytes(), noiseFile)
	if err := st.Save(t.Context(), src.Name(), bytes.NewReader(bad)); err != nil {
		t.Fatalf("Save(%q) of the corrupted archive: %v", src.Name(), err)
	}
	list, err := h.Versions(t.Context(), src.Name())
	if err != nil || len(list) != 2 {
		t.Fatalf("Versions(%q) = %q, %v; want the Session's archive and the corrupted one", src.Name(), versionIDs(list), err)
	}

	var logs bytes.Buffer
	dst := newFallbackSession(t, st, slog.New(slog.NewTextHandler(&logs, nil)))
	res, err := dst.Restore(t.Context())
	if abandonErr := dst.Abandon(t.Context()); abandonErr != nil {
		t.Errorf("Session.Abandon: %v", abandonErr)
	}
	if err != nil {
		t.Fatalf("Session.Restore: %v; want the previous archive restored", err)
	}
	if !res.Found || !res.FellBack || res.Version != list[1].ID {
		t.Errorf("Session.Restore = %+v; want Found, FellBack and Version %q (the previous archive)", res, list[1].ID)
	}
	if len(res.Skipped) != 1 || !errors.Is(res.Skipped[0], remoteauth.ErrCorruptArchive) || !strings.Contains(res.Skipped[0].Error(), list[0].ID) {
		t.Errorf("RestoreResult.Skipped = %v; want one error wrapping remoteauth.ErrCorruptArchive that names the newest archive %q", res.Skipped, list[0].ID)
	}
	if got := filetree.Read(t, dst.ProfileDir()); !maps.Equal(got, files) {
		t.Errorf("the restored profile holds %d files %q, want the %d of the previous archive", len(got), slices.Sorted(maps.Keys(got)), len(files))
	}
	if warning := "restored an older archive because the newest failed verification"; !strings.Contains(logs.String(), warning) {
		t.Errorf("the Session's logs do not hold the warning %q:\n%s", warning, logs.String())
	}
}

// newFallbackSession returns a Session of client ID "fallback" over st, in a new DataPath, that
// logs to logger (nil: slog.Default()).
func newFallbackSession(t *testing.T, st remoteauth.Store, logger *slog.Logger) *remoteauth.Session {
	t.Helper()
	s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "fallback", DataPath: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatalf("remoteauth.NewSession: %v", err)
	}
	return s
}

// flipFileByte returns a copy of the zip archive with one byte flipped in the middle of the
// stored (compressed) data of the entry name.
func flipFileByte(t *testing.T, archive []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatalf("the Session's archive is not a zip archive: %v", err)
	}
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		off, err := f.DataOffset()
		if err != nil {
			t.Fatalf("the Session's archive: %s: %v", name, err)
		}
		bad := bytes.Clone(archive)
		bad[off+int64(f.CompressedSize64/2)] ^= 0x55
		return bad
	}
	t.Fatalf("the Session's archive has no entry %q", name)
	return nil
}

// checkVersions checks that Versions lists want (newest first): as many archives, with distinct
// IDs, the sizes of want (mapped by h.size), a plausible save time, each extracted by ExtractVersion byte for byte;
// and that Extract writes the first. It returns the listing.
func checkVersions(t *testing.T, st remoteauth.Store, h history, session string, want []content) []remoteauth.ArchiveVersion {
	t.Helper()
	before := time.Now()
	got, err := h.Versions(t.Context(), session)
	if err != nil {
		t.Fatalf("Versions(%q): %v", session, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Versions(%q) listed %d archives %q, want %d: %v", session, len(got), versionIDs(got), len(want), want)
	}
	if hasDuplicateIDs(got) {
		t.Errorf("Versions(%q) listed IDs %q: an ID appears twice", session, versionIDs(got))
	}
	for i, v := range got {
		if w := h.size(want[i].size); v.Size != w {
			t.Errorf("Versions(%q)[%d] (ID %q) has size %d, want %d (an archive of %d bytes)", session, i, v.ID, v.Size, w, want[i].size)
		}
		// Not a timing assertion: a save time a day off means a wrong field or unit.
		if !v.Saved.IsZero() && (v.Saved.Before(before.Add(-24*time.Hour)) || v.Saved.After(before.Add(24*time.Hour))) {
			t.Errorf("Versions(%q)[%d] (ID %q) was saved at %v, more than a day from now (%v)", session, i, v.ID, v.Saved, before)
		}
		vw := newVerifier(want[i])
		if err := h.ExtractVersion(t.Context(), session, v.ID, vw); err != nil {
			t.Errorf("ExtractVersion(%q, %q): %v; want the saved %s", session, v.ID, err, want[i])
			continue
		}
		vw.check(t, session, want[i])
	}
	if len(want) > 0 {
		checkArchive(t, st, session, want[0])
	} else {
		checkMissing(t, st, session)
	}
	return got
}

// checkVersionMissing checks that ExtractVersion of id returns an error wrapping ErrNotFound that
// names the session, and writes nothing.
func checkVersionMissing(t *testing.T, h remoteauth.History, session, id string) {
	t.Helper()
	var w countWriter
	err := h.ExtractVersion(t.Context(), session, id, &w)
	checkError(t, err, remoteauth.ErrNotFound, fmt.Sprintf("ExtractVersion(%q, %q) of an archive the session does not keep", session, id), session)
	if w.n != 0 {
		t.Errorf("ExtractVersion(%q, %q) of an archive the session does not keep wrote %d bytes, want none", session, id, w.n)
	}
}

func versionIDs(versions []remoteauth.ArchiveVersion) []string {
	list := make([]string, len(versions))
	for i, v := range versions {
		list[i] = v.ID
	}
	return list
}

func hasDuplicateIDs(versions []remoteauth.ArchiveVersion) bool {
	list := versionIDs(versions)
	slices.Sort(list)
	return len(slices.Compact(list)) != len(versions)
}
