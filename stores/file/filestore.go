// Package filestore is the embedded default [remoteauth.Store]: it keeps each session's archive as
// a file in a directory on a local disk or a network file system (NFS, SMB) mounted as one. It
// needs no server, and it is what a single host with a persistent disk should use.
//
// # Layout
//
// The archive of a session is the file <dir>/<name>.zip, where <name> is the session name with a
// '+' before each upper-case letter: session "RemoteAuth-alice" is stored as
// "+Remote+Auth-alice.zip", session "a" as "a.zip" and session "A" as "+A.zip". Session names are
// case-sensitive ("a" and "A" are different sessions), but the default file systems of macOS and
// Windows are not: there "a.zip" and "A.zip" would be one file, and saving one session would
// overwrite the other. '+' never occurs in a session name, and the escapes make file names that
// differ however letters are cased, so sessions stay apart on every file system.
//
// Escaped, a name of remoteauth.MaxSessionNameLen characters stays within the 255 bytes that file
// systems allow in a file name.
//
// The archives kept before the current one (see History, below) are in the directory
// <dir>/<name>.history, and the session's leases (see Leases) in <dir>/<name>.lease. The
// directory holds nothing else, apart from the temporary files of
// Saves in progress (see below). It should belong to the store alone.
//
// # Saving
//
// Save writes the archive to a temporary file in the same directory, named "." + <name> (cut short
// if long) + ".tmp-" + random digits, and created with mode 0600 (an archive is a logged-in
// account). It checks ctx between reads, then fsyncs the file, closes it, renames it over
// <name>.zip and fsyncs the directory, so that Extract, another process and a host that loses power
// all see either the previous archive or the new one, whole. If anything fails before the rename,
// Save removes the temporary file and the previous archive stays as it was. Delete removes the file
// and fsyncs the directory.
//
// A process that dies in the middle of a Save leaves its temporary file behind. New removes
// temporary files (regular files whose names begin with "." and contain ".tmp-") that were last
// modified more than [Options.StaleTempAge] ago, 24 hours by default. A Save that is still
// running, in this process or another one sharing the directory, keeps its file's modification
// time fresh as it writes, so it is left alone.
//
// # History
//
// A Store implements [remoteauth.History]: it keeps the last [Options.Keep] archives of each
// session (remoteauth.DefaultKeep, 2, by default: the current one and the one before). The
// current archive stays <name>.zip, so archives written before filestore kept history are read
// as they are. The older ones are files <name>.history/<id>.zip, where <id> is 19 decimal digits:
// nanoseconds since 1970 (UTC). The current archive's ID is the later of its modification time
// and one nanosecond after the newest kept ID; a Save that replaces it first hard-links it into
// the history directory under that ID (no copy, no extra space), then renames the new archive
// over <name>.zip, then removes the kept files beyond Keep. Each kept archive takes its size on
// disk, and keeping more than one needs hard links: New checks that the file system supports
// them. With Keep 1, a Save removes the history directory. Changing a current archive's
// modification time by hand (touch) changes its ID.
//
// No step loses an archive that Keep says to keep. A process that dies after the link and before
// the rename leaves the current archive with an entry that is the same file: it is listed once,
// under that entry's ID. One that dies after the rename leaves files beyond Keep: they are not
// listed, and the next Save removes them. Delete removes <name>.zip, then the history directory;
// a history directory without <name>.zip (a Delete that died half-way) is never listed, and
// the next Save of the session removes it before anything else, so that a deleted session's
// archives never come back. A failed Save removes nothing. Within a process, Saves, Deletes and
// listings of a session are serialised around these steps; processes sharing a directory are
// not coordinated, so two of them saving one session at once may keep one archive fewer.
//
// # Leases
//
// A Store implements [remoteauth.Leaser], for processes on one host or on hosts sharing the
// directory over NFS. Each grant is a token file <dir>/<name>.lease/<token>, where <token> is
// the lease's token in 20 decimal digits, holding the owner and the expiry (JSON). A grant
// creates the file of the next token with O_EXCL, so that of the processes that try to grant
// one token, exactly one succeeds, on a local file system and on NFS version 3 or later; the
// others find the newer token and report it held. The newest token file is the session's
// token counter: the older ones are removed, and none is removed by Delete, so that tokens
// never go back (removing a lease directory by hand while a process holds a lease would let a
// later grant reuse its token). Renew and Release write a temporary file ("." + name +
// ".tmp-…", like a Save's) and rename it over the token file. A token file that stays
// unreadable (its creator died before writing it) counts as live for [UnwrittenLeaseAge] from
// its modification time.
//
// The fenced Save of a lease is Save with one more step: just before the rename that makes the
// new archive current, under the session's lock, it checks that the lease's token file is
// still the newest and not released; Lease.Delete checks the same before it removes anything.
// Through one Store value that is atomic: its grants take the same lock. Across processes (and
// across Store values opened on one directory, which share no lock) it is not, because a file system offers no compare-and-rename: a newer lease
// granted by another process between the check and the rename (microseconds, unless the
// process is paused exactly there) does not stop the rename. That needs the holder to be
// paused past its expiry at that point, and the new holder to have saved within the pause;
// then the stale archive replaces the newer one, and the new holder's next backup replaces it
// in turn. Renew has the same window: it may report success once for a lease superseded a
// moment before, and its next Renew or Save reports ErrLeaseLost.
//
// Expiry is measured by the clock of each process's host: hosts sharing a directory over NFS
// must keep their clocks synchronised (NTP), and should mount it with lookupcache=none (or
// actimeo=0), or a host may see another host's newer token file only once its attribute
// cache expires; the server still refuses a second grant of one token.
//
// # URLs
//
// Importing filestore registers the "file" scheme with [remoteauth.OpenStore]. The URL names the
// directory, as with gocloud.dev/blob/fileblob:
//
//	file:///var/lib/wwebstore      /var/lib/wwebstore
//	file://localhost/srv/ws        /srv/ws ("localhost" is the only host allowed)
//	file:///C:/wwebstore           C:\wwebstore, on Windows
//	file://./sessions              sessions, relative to the working directory
//	file:sessions                  the same
//
// Percent-escapes are decoded. The directory is created if need be. The one query parameter is
// keep=N (Options.Keep), as in file:///var/lib/wwebstore?keep=3; the other options take their
// defaults.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Scheme is the URL scheme that filestore registers with remoteauth.RegisterScheme.
const Scheme = "file"

func init() {
	remoteauth.RegisterScheme(Scheme, openURL)
}

// DefaultStaleTempAge is the default for Options.StaleTempAge.
const DefaultStaleTempAge = 24 * time.Hour

// Options configures a Store. The zero value, like a nil *Options, means the defaults.
type Options struct {
	// StaleTempAge is how long after its last modification New considers a temporary file left by
	// an interrupted Save to be abandoned, and removes it. Zero means DefaultStaleTempAge; a
	// negative value makes New leave temporary files alone.
	StaleTempAge time.Duration

	// Keep is how many archives of each session the store keeps, the current one included (see
	// remoteauth.History and the package documentation). Zero means remoteauth.DefaultKeep (2);
	// 1 keeps no history (and removes the history a Save finds); any positive number is allowed.
	// Keeping more than one needs hard links, and each kept archive takes its size on disk.
	Keep int
}

// Store is a remoteauth.Store that keeps archives as files in a directory. It is safe for
// concurrent use, and several processes may share a directory (the last Save of a session wins).
// It implements remoteauth.History and remoteauth.Leaser.
type Store struct {
	dir  string // absolute
	keep int    // archives kept per session, at least 1
	// locks serialise, within this process, the steps of Save and Delete that change a
	// session's files, and let Versions and ExtractVersion see those files between two such
	// steps. Sessions share them by a hash of their names.
	locks [64]sync.RWMutex
}

var (
	_ remoteauth.Store   = (*Store)(nil)
	_ remoteauth.Lister  = (*Store)(nil)
	_ remoteauth.History = (*Store)(nil)
	_ remoteauth.Leaser  = (*Store)(nil)
)

// New returns a Store that keeps archives in dir, creating dir (and its parents) with mode 0700
// if it does not exist. A relative dir is resolved against the working directory of the call. A
// nil opts means the defaults.
//
// New removes the stale temporary files of interrupted Saves (see Options.StaleTempAge). Failing
// to remove one is not an error, since a leftover file does not affect the store; failing to read
// dir is. With Options.Keep above 1 (the default), New checks that dir's file system supports
// hard links, and returns an error saying to set Keep to 1 if it does not; a negative Keep is an
// error.
func New(dir string, opts *Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("filestore: no directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	staleAge := DefaultStaleTempAge
	if opts != nil && opts.StaleTempAge != 0 {
		staleAge = opts.StaleTempAge
	}
	s := &Store{dir: abs, keep: remoteauth.DefaultKeep}
	if opts != nil && opts.Keep != 0 {
		if opts.Keep < 0 {
			return nil, fmt.Errorf("filestore: Options.Keep is %d; want 1 or more (0 means the default, %d)", opts.Keep, remoteauth.DefaultKeep)
		}
		s.keep = opts.Keep
	}
	if staleAge > 0 {
		if err := s.removeStaleTemps(time.Now().Add(-staleAge)); err != nil {
			return nil, fmt.Errorf("filestore: %w", err)
		}
	}
	if s.keep > 1 {
		if err := checkHardLinks(abs); err != nil {
			return nil, fmt.Errorf("filestore: %s: keeping %d archives per session needs hard links, which this file system refused (%w); set Options.Keep to 1 (\"?keep=1\" in a URL) to keep no history", abs, s.keep, err)
		}
	}
	return s, nil
}

// checkHardLinks reports an error if dir's file system refuses hard links. If it cannot even
// create a file there, it reports nothing: Saves will fail with that error, and a store opened
// only to read may live in a read-only directory.
func checkHardLinks(dir string) error {
	f, err := os.CreateTemp(dir, ".link-check"+tempMarker+"*")
	if err != nil {
		return nil
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	if err := os.Link(name, name+"-link"); err != nil {
		return err
	}
	return os.Remove(name + "-link")
}

// SessionExists reports whether session has an archive. If the store's directory itself is
// missing (deleted, or a network mount gone), that is an error, not a missing session.
func (s *Store) SessionExists(ctx context.Context, session string) (bool, error) {
	path, err := s.begin(ctx, "check", session)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		err = s.checkDir()
		if err == nil {
			return false, nil
		}
	}
	if err != nil {
		return false, opError("check", session, err)
	}
	return true, nil
}

// Save reads r to its end and makes what it read session's archive, replacing the previous one
// atomically (see the package documentation). If r fails, ctx ends or the file system fails, Save
// returns an error wrapping the cause, removes its temporary file, and leaves the previous
// archive (or its absence) as it was.
func (s *Store) Save(ctx context.Context, session string, r io.Reader) error {
	path, err := s.begin(ctx, "save", session)
	if err != nil {
		return err
	}
	if err := s.replace(ctx, session, path, r, nil); err != nil {
		return opError("save", session, err)
	}
	return nil
}

// replace writes r to a new temporary file and commits it as session's archive at path. A
// non-nil fence is checked by commit just before the switch (see lease.go).
func (s *Store) replace(ctx context.Context, session, path string, r io.Reader, fence func() error) (err error) {
	f, err := os.CreateTemp(s.dir, tempPattern(filepath.Base(path)))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rmErr := os.Remove(f.Name()); rmErr != nil {
				err = errors.Join(err, rmErr)
			}
		}
	}()
	if err := writeDurably(f, remoteauth.ContextReader(ctx, r)); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.commit(session, f.Name(), path, fence)
}

// Extract writes session's archive to w, checking ctx between reads. For a session without an
// archive it returns an error wrapping both remoteauth.ErrNotFound and fs.ErrNotExist, and
// writes nothing. If the store's directory itself is missing, the error does not wrap
// ErrNotFound: the archive may exist where the directory should be.
func (s *Store) Extract(ctx context.Context, session string, w io.Writer) error {
	path, err := s.begin(ctx, "extract", session)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if dirErr := s.checkDir(); dirErr != nil {
			return opError("extract", session, dirErr)
		}
		return opError("extract", session, fmt.Errorf("%w: %w", remoteauth.ErrNotFound, err))
	}
	if err != nil {
		return opError("extract", session, err)
	}
	defer f.Close() // read-only: Close reports nothing that matters once the data is read
	if _, err := io.Copy(w, remoteauth.ContextReader(ctx, f)); err != nil {
		return opError("extract", session, err)
	}
	return nil
}

// Delete removes session's archive, then its history directory with the archives kept before
// it. Deleting a session without an archive returns nil.
func (s *Store) Delete(ctx context.Context, session string) error {
	path, err := s.begin(ctx, "delete", session)
	if err != nil {
		return err
	}
	if err := s.remove(session, path, nil); err != nil {
		return opError("delete", session, err)
	}
	return nil
}

// List returns the sessions that have an archive, sorted by name, with the sizes and
// modification times of their archive files. It reads the store's directory once; temporary files
// of Saves in progress and files that are not archives of valid session names are skipped. It
// implements remoteauth.Lister.
func (s *Store) List(ctx context.Context) ([]remoteauth.SessionInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestore: list sessions: %w", err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: list sessions: %w", err)
	}
	var list []remoteauth.SessionInfo
	for _, e := range entries {
		session, ok := sessionName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, fmt.Errorf("filestore: list sessions: %w", err)
		}
		list = append(list, remoteauth.SessionInfo{Name: session, Size: fi.Size(), Saved: fi.ModTime()})
	}
	// ReadDir sorts by file name; the escapes change that order.
	slices.SortFunc(list, func(a, b remoteauth.SessionInfo) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// begin checks the arguments common to every method, the session name and then ctx, and returns
// the path of session's archive.
func (s *Store) begin(ctx context.Context, op, session string) (string, error) {
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return "", fmt.Errorf("filestore: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return "", opError(op, session, err)
	}
	return filepath.Join(s.dir, fileName(session)), nil
}

// checkDir returns an error if the store's directory is not there.
func (s *Store) checkDir() error {
	fi, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("store directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("store directory %s is not a directory", s.dir)
	}
	return nil
}

func opError(op, session string, err error) error {
	return fmt.Errorf("filestore: %s session %q: %w", op, session, err)
}

// maxFileName is the longest file name, in bytes, that common file systems allow (ext4, XFS,
// Btrfs, APFS, NTFS).
const maxFileName = 255

const ext = ".zip"

// fileName returns the name of session's archive file: see the package documentation.
func fileName(session string) string {
	var b strings.Builder
	b.Grow(2*len(session) + len(ext))
	for i := range len(session) {
		if c := session[i]; 'A' <= c && c <= 'Z' {
			b.WriteByte('+')
		}
		b.WriteByte(session[i])
	}
	b.WriteString(ext)
	return b.String()
}

// sessionName returns the session whose archive file is named name, and false if name is not the
// archive file of a valid session name (fileName(session) == name).
func sessionName(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, ext)
	if !ok {
		return "", false
	}
	session := strings.ReplaceAll(base, "+", "")
	if remoteauth.ValidateSessionName(session) != nil || fileName(session) != name {
		return "", false
	}
	return session, true
}

// tempMarker is what the name of every temporary file contains, after a leading '.'.
const tempMarker = ".tmp-"

// tempPattern returns the os.CreateTemp pattern for a temporary file that will become the
// archive file named name: "." + name without ".zip", cut short so that the random suffix fits
// in a file name, + ".tmp-*". The name only helps people see whose Save left a file behind.
func tempPattern(name string) string {
	base := strings.TrimSuffix(name, ext)
	return "." + base[:min(len(base), 64)] + tempMarker + "*"
}

// isTemp reports whether a directory entry is a temporary file of Save.
func isTemp(e fs.DirEntry) bool {
	return e.Type().IsRegular() && strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), tempMarker)
}

// removeStaleTemps removes the temporary files last modified before cutoff.
func (s *Store) removeStaleTemps(cutoff time.Time) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !isTemp(e) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue // gone already, or maybe still being written
		}
		// Best effort: a leftover file wastes space but does not affect the store.
		_ = os.Remove(filepath.Join(s.dir, e.Name()))
	}
	return nil
}

// writeDurably copies r into f, syncs f to stable storage and closes it. f is closed whatever
// happens; the error is the first of the copy, the sync and the close.
func writeDurably(f *os.File, r io.Reader) error {
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes the renames and removals in dir durable. Windows cannot fsync a directory (it
// cannot be opened for writing), so there a rename is as durable as NTFS makes it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}

// openURL opens a Store for a "file" URL: see the package documentation.
func openURL(_ context.Context, u *url.URL) (remoteauth.Store, error) {
	dir, err := dirFromURL(u)
	if err != nil {
		return nil, err
	}
	opts, err := optionsFromURL(u)
	if err != nil {
		return nil, err
	}
	return New(dir, opts)
}

// optionsFromURL reads the query parameters of a "file" URL: keep=N sets Options.Keep.
func optionsFromURL(u *url.URL) (*Options, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("filestore: URL %q: %w", u.Redacted(), err)
	}
	var opts Options
	for key, values := range q {
		if key != "keep" {
			return nil, fmt.Errorf("filestore: URL %q: unknown query parameter %q (the only one is keep)", u.Redacted(), key)
		}
		n, err := strconv.Atoi(values[len(values)-1])
		if len(values) > 1 || err != nil || n < 1 {
			return nil, fmt.Errorf("filestore: URL %q: keep=%s: want one keep=N with N the number of archives kept per session, 1 or more", u.Redacted(), strings.Join(values, ","))
		}
		opts.Keep = n
	}
	return &opts, nil
}

func dirFromURL(u *url.URL) (string, error) {
	if u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("filestore: URL %q: fragments and empty queries are not supported", u.Redacted())
	}
	var dir string
	switch {
	case u.Opaque != "": // file:relative/dir
		var err error
		if dir, err = url.PathUnescape(u.Opaque); err != nil {
			return "", fmt.Errorf("filestore: URL %q: %w", u.Redacted(), err)
		}
	case u.Host == ".": // file://./relative/dir
		dir = strings.TrimPrefix(u.Path, "/")
		if dir == "" {
			dir = "."
		}
	case u.Host == "" || u.Host == "localhost": // file:///absolute/dir
		dir = u.Path
		if os.PathSeparator != '/' {
			dir = strings.TrimPrefix(dir, "/") // file:///C:/dir on Windows
		}
	default:
		return "", fmt.Errorf("filestore: URL %q: host %q: a file URL names a local directory, as file:///absolute/dir or file://./relative/dir", u.Redacted(), u.Host)
	}
	if dir == "" {
		return "", fmt.Errorf("filestore: URL %q names no directory", u.Redacted())
	}
	return filepath.FromSlash(dir), nil
}
