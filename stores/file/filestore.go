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
// The directory holds nothing else, apart from the temporary files of Saves in progress (see
// below). It should belong to the store alone.
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
// Percent-escapes are decoded. The directory is created if need be, and the store has the
// default options: query parameters are not supported.
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
	"strings"
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
}

// Store is a remoteauth.Store that keeps archives as files in a directory. It is safe for
// concurrent use, and several processes may share a directory (the last Save of a session wins).
type Store struct {
	dir string // absolute
}

var _ remoteauth.Store = (*Store)(nil)

// New returns a Store that keeps archives in dir, creating dir (and its parents) with mode 0700
// if it does not exist. A relative dir is resolved against the working directory of the call. A
// nil opts means the defaults.
//
// New removes the stale temporary files of interrupted Saves (see Options.StaleTempAge). Failing
// to remove one is not an error, since a leftover file does not affect the store; failing to read
// dir is.
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
	s := &Store{dir: abs}
	if staleAge > 0 {
		if err := s.removeStaleTemps(time.Now().Add(-staleAge)); err != nil {
			return nil, fmt.Errorf("filestore: %w", err)
		}
	}
	return s, nil
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
	if err := s.replace(ctx, path, r); err != nil {
		return opError("save", session, err)
	}
	if err := syncDir(s.dir); err != nil {
		return opError("save", session, err)
	}
	return nil
}

// replace writes r to a new temporary file and renames it to path.
func (s *Store) replace(ctx context.Context, path string, r io.Reader) (err error) {
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
	if _, err := io.Copy(f, remoteauth.ContextReader(ctx, r)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
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

// Delete removes session's archive. Deleting a session without an archive returns nil.
func (s *Store) Delete(ctx context.Context, session string) error {
	path, err := s.begin(ctx, "delete", session)
	if err != nil {
		return err
	}
	err = os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return opError("delete", session, err)
	}
	return nil
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
	return New(dir, nil)
}

func dirFromURL(u *url.URL) (string, error) {
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("filestore: URL %q: query parameters and fragments are not supported", u.Redacted())
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
