package filestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// historySuffix ends the name of a session's history directory, <name>.history.
const historySuffix = ".history"

// idLen is the length of an archive ID: a number of nanoseconds since 1970 (UTC), in decimal
// digits with leading zeros.
const idLen = 19

// Versions lists the kept archives of session, newest first: the current archive, then at most
// Options.Keep-1 previous ones from its history directory. A session without an archive has
// none, whatever its history directory holds (what an interrupted Delete left). It implements
// remoteauth.History.
func (s *Store) Versions(ctx context.Context, session string) ([]remoteauth.ArchiveVersion, error) {
	path, err := s.begin(ctx, "list versions of", session)
	if err != nil {
		return nil, err
	}
	mu := s.lock(session)
	mu.RLock()
	list, err := s.scan(session, path)
	mu.RUnlock()
	if err != nil {
		return nil, opError("list versions of", session, err)
	}
	if len(list) == 0 {
		if err := s.checkDir(); err != nil {
			return nil, opError("list versions of", session, err)
		}
		return nil, nil
	}
	versions := make([]remoteauth.ArchiveVersion, 0, min(len(list), s.keep))
	for _, k := range list[:min(len(list), s.keep)] {
		versions = append(versions, remoteauth.ArchiveVersion{ID: k.id, Size: k.fi.Size(), Saved: k.fi.ModTime()})
	}
	return versions, nil
}

// ExtractVersion writes the kept archive of session with that ID to w, checking ctx between
// reads. When session keeps no archive with that ID, it returns an error wrapping
// remoteauth.ErrNotFound and writes nothing. It implements remoteauth.History.
func (s *Store) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	path, err := s.begin(ctx, "extract", session)
	if err != nil {
		return err
	}
	mu := s.lock(session)
	mu.RLock()
	f, err := s.openVersion(session, path, id)
	mu.RUnlock()
	if err != nil {
		return opError("extract", session, err)
	}
	defer f.Close() // read-only: Close reports nothing that matters once the data is read
	if _, err := io.Copy(w, remoteauth.ContextReader(ctx, f)); err != nil {
		return opError("extract", session, fmt.Errorf("archive %s: %w", id, err))
	}
	return nil
}

// openVersion opens the kept archive of session with that ID. Once open, the file can be read
// whole even if a Save evicts it meanwhile (except on Windows, where eviction then fails and is
// tried again by the next Save).
func (s *Store) openVersion(session, path, id string) (*os.File, error) {
	if _, ok := parseID(id); !ok {
		return nil, fmt.Errorf("archive %q: not an ID that filestore makes (%d digits): %w", id, idLen, remoteauth.ErrNotFound)
	}
	list, err := s.scan(session, path)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		if err := s.checkDir(); err != nil {
			return nil, err
		}
	}
	i := slices.IndexFunc(list[:min(len(list), s.keep)], func(k kept) bool { return k.id == id })
	if i < 0 {
		return nil, fmt.Errorf("archive %s: %w", id, remoteauth.ErrNotFound)
	}
	p := path
	if i > 0 || list[0].entry != "" {
		p = filepath.Join(s.historyDir(session), list[i].entry)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("archive %s: %w: %w", id, remoteauth.ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err == nil && !os.SameFile(fi, list[i].fi) {
		// Another process replaced the file between the listing and the opening.
		err = fmt.Errorf("archive %s: %w (replaced by another process)", id, remoteauth.ErrNotFound)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// kept is an archive of a session, as scan found it.
type kept struct {
	id    string
	entry string // its file's name in the history directory; "" for a current archive without one
	fi    fs.FileInfo
}

// scan lists session's archives, newest first, not cut to Keep. The first is the current
// archive at path, with the ID that commit gives its entry when a Save replaces it: the later of
// its modification time and one nanosecond after the newest entry; or, when it already has an
// entry (the same file: a Save died after linking it), that entry's ID. Then come the entries older than the current archive
// that are not the same file as one listed before. A session without a current archive has no
// archives, whatever its history directory holds.
func (s *Store) scan(session, path string) ([]kept, error) {
	cur, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !cur.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: move it out of the store's directory", path)
	}
	entries, err := s.entries(session)
	if err != nil {
		return nil, err
	}
	list := []kept{{fi: cur}}
	curID := cur.ModTime().UnixNano()
	if len(entries) > 0 {
		curID = max(curID, entries[0].n+1)
	}
	for _, e := range entries {
		if os.SameFile(e.fi, cur) {
			list[0].entry, curID = e.name, e.n
			break
		}
	}
	list[0].id = formatID(curID)
	for _, e := range entries {
		dup := slices.ContainsFunc(list, func(k kept) bool { return os.SameFile(k.fi, e.fi) })
		if e.n < curID && !dup {
			list = append(list, kept{id: formatID(e.n), entry: e.name, fi: e.fi})
		}
	}
	return list, nil
}

// entry is a file in a history directory.
type entry struct {
	n    int64 // its ID
	name string
	fi   fs.FileInfo
}

// entries returns the archive files in session's history directory, newest first. Other names
// are left out (and alone).
func (s *Store) entries(session string) ([]entry, error) {
	dirEntries, err := os.ReadDir(s.historyDir(session))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []entry
	for _, de := range dirEntries {
		base, ok := strings.CutSuffix(de.Name(), ext)
		n, isID := parseID(base)
		if !ok || !isID || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // evicted by another process since ReadDir
		}
		if err != nil {
			return nil, err
		}
		list = append(list, entry{n: n, name: de.Name(), fi: fi})
	}
	slices.SortFunc(list, func(a, b entry) int { return cmp.Compare(b.n, a.n) })
	return list, nil
}

// commit makes the complete, synced temporary file tmp session's archive at path (see the
// package documentation, History). What comes before the rename may fail the Save and leaves
// every archive as it was; what comes after only keeps history, and its failures are set right
// by the next Save. A non-nil fence runs under the session's lock just before the rename, and
// its error fails the Save (a lease that was lost: see lease.go).
func (s *Store) commit(session, tmp, path string, fence func() error) error {
	mu := s.lock(session)
	mu.Lock()
	defer mu.Unlock()
	hist := s.historyDir(session)
	list, err := s.scan(session, path)
	if err != nil {
		return err
	}
	switch {
	case len(list) == 0:
		// A history without a current archive is what an interrupted Delete left behind: it
		// must not become the history of the new archive.
		if err := os.RemoveAll(hist); err != nil {
			return fmt.Errorf("removing the history of a deleted archive: %w", err)
		}
	case s.keep > 1 && list[0].entry == "":
		// Keep the current archive: link it into the history directory under the ID that
		// Versions lists it with, before it is replaced.
		if err := mkdir(hist); err != nil {
			return fmt.Errorf("keeping the previous archive: %w", err)
		}
		if err := os.Link(path, filepath.Join(hist, list[0].id+ext)); err != nil {
			return fmt.Errorf("keeping the previous archive: %w", err)
		}
		if err := syncDir(hist); err != nil {
			return fmt.Errorf("keeping the previous archive: %w", err)
		}
	}
	if fence != nil {
		if err := fence(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.rotate(session, path)
	return nil
}

// rotate runs after a new archive was renamed into place: it evicts the entries of the history
// directory beyond Keep, or with Keep 1 removes the directory. Its failures are not the Save's,
// whose archive is in place: entries left beyond Keep are not listed, and the next Save evicts
// them.
func (s *Store) rotate(session, path string) {
	hist := s.historyDir(session)
	if s.keep == 1 {
		if _, err := os.Lstat(hist); err == nil && os.RemoveAll(hist) == nil {
			_ = syncDir(s.dir) // best effort, as above
		}
		return
	}
	list, err := s.scan(session, path)
	if err != nil || len(list) == 0 {
		return
	}
	listed := map[string]bool{}
	for _, k := range list[:min(len(list), s.keep)] {
		listed[k.entry] = true
	}
	entries, err := s.entries(session)
	if err != nil {
		return
	}
	evicted := false
	for _, e := range entries {
		if !listed[e.name] {
			// Best effort, as above; on Windows, an entry being read cannot be removed.
			evicted = os.Remove(filepath.Join(hist, e.name)) == nil || evicted
		}
	}
	if evicted {
		_ = syncDir(hist) // best effort, as above
	}
}

// remove deletes session's archive at path, then its history directory. A non-nil fence runs
// first, under the session's lock, and its error deletes nothing.
func (s *Store) remove(session, path string, fence func() error) error {
	mu := s.lock(session)
	mu.Lock()
	defer mu.Unlock()
	if fence != nil {
		if err := fence(); err != nil {
			return err
		}
	}
	curErr := os.Remove(path)
	if curErr != nil && !errors.Is(curErr, fs.ErrNotExist) {
		return curErr
	}
	hist := s.historyDir(session)
	_, histErr := os.Lstat(hist)
	if histErr == nil {
		if err := os.RemoveAll(hist); err != nil {
			return fmt.Errorf("the archive is deleted, but not the archives kept before it: %w", err)
		}
	}
	if curErr == nil || histErr == nil {
		return syncDir(s.dir)
	}
	return nil
}

// historyDir returns the path of session's history directory.
func (s *Store) historyDir(session string) string {
	return filepath.Join(s.dir, strings.TrimSuffix(fileName(session), ext)+historySuffix)
}

// lock returns the lock that guards session's files in this process.
func (s *Store) lock(session string) *sync.RWMutex {
	h := fnv.New32a()
	h.Write([]byte(session))
	return &s.locks[h.Sum32()%uint32(len(s.locks))]
}

// mkdir creates a history directory, and syncs its parent, unless it exists.
func mkdir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func formatID(n int64) string { return fmt.Sprintf("%0*d", idLen, n) }

// parseID returns the number that id stands for, and false if id is not idLen decimal digits.
func parseID(id string) (int64, bool) {
	if len(id) != idLen || strings.Trim(id, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil
}
