package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// backupAttempts is how many times backup tries a save that the store refuses (the engine's
// RetryPolicy, 1 s then 2 s apart): an operator at a terminal would rather see the error soon.
const backupAttempts = 3

// sessionStore presents a store's session name to a remoteauth.Session whose own name differs:
// the Session's name comes from its profile directory ("RemoteAuth-<clientId>"), the store's
// from --session. Every call goes to the store's session, whatever name the Session gives.
type sessionStore struct {
	remoteauth.Store
	name string
	n    io.Writer // counts the archive's bytes, for the progress bar
}

func (s sessionStore) SessionExists(ctx context.Context, _ string) (bool, error) {
	return s.Store.SessionExists(ctx, s.name)
}

func (s sessionStore) Save(ctx context.Context, _ string, r io.Reader) error {
	return s.Store.Save(ctx, s.name, io.TeeReader(r, s.n))
}

func (s sessionStore) Extract(ctx context.Context, _ string, w io.Writer) error {
	return s.Store.Extract(ctx, s.name, io.MultiWriter(w, s.n))
}

func (s sessionStore) Delete(ctx context.Context, _ string) error {
	return s.Store.Delete(ctx, s.name)
}

// profileLayout checks a profile directory and returns where the engine's Session finds it: the
// engine lays profiles out as <dataPath>/RemoteAuth-<clientId>, so dir's last element must be
// "RemoteAuth" or "RemoteAuth-<clientId>"; its parent is the data path, where a restore keeps
// its temporary files.
func profileLayout(dir, session string) (dataPath, clientID string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	base := filepath.Base(abs)
	clientID, ok := strings.CutPrefix(base, "RemoteAuth-")
	if !ok && base != "RemoteAuth" {
		return "", "", usagef("--dir %s: a profile directory is named RemoteAuth-<clientId> (or RemoteAuth), as RemoteAuth lays it out in its data path; use --dir %s", dir, filepath.Join(dir, session))
	}
	if _, err := remoteauth.SessionName(clientID); err != nil {
		return "", "", usagef("--dir %s: %v", dir, err)
	}
	return filepath.Dir(abs), clientID, nil
}

// profileSession returns a Session for the profile directory that profileLayout found, saving to
// and restoring from the store's session name, and a progress bar described by desc, of total
// bytes (-1 if unknown), that counts the archive's bytes. The caller finishes the bar.
func (c *cli) profileSession(st remoteauth.Store, session, dataPath, clientID, desc string, total int64) (*remoteauth.Session, *progress, error) {
	p := c.startProgress(desc, total)
	s, err := remoteauth.NewSession(sessionStore{st, session, p.writer()}, &remoteauth.Options{
		ClientID: clientID,
		DataPath: dataPath,
		Logger:   c.log,
		Retry:    remoteauth.RetryPolicy{MaxAttempts: backupAttempts},
	})
	if err != nil {
		p.finish()
		return nil, nil, err
	}
	return s, p, nil
}

// openProfile is what backup and restore share: it checks the profile directory dir (see
// profileLayout), opens the store of the --store flag (storeURL), and returns the store's URL
// and profileSession's Session and progress bar, described as "<verb> <session>".
func (c *cli) openProfile(ctx context.Context, storeURL, dir, session, verb string) (*remoteauth.Session, *progress, string, error) {
	dataPath, clientID, err := profileLayout(dir, session)
	if err != nil {
		return nil, nil, "", err
	}
	st, rawURL, err := c.openStoreFlag(ctx, storeURL)
	if err != nil {
		return nil, nil, "", err
	}
	s, p, err := c.profileSession(st, session, dataPath, clientID, verb+" "+session, -1)
	return s, p, rawURL, err
}

// profileResult is the JSON document of restore, and the fields backup's shares with it.
type profileResult struct {
	Store       string  `json:"store"`
	Session     string  `json:"session"`
	Dir         string  `json:"dir"`
	Files       int     `json:"files"`
	Bytes       int64   `json:"bytes"`
	ArchiveSize int64   `json:"archive_bytes"`
	Seconds     float64 `json:"seconds"`
}

// backupResult is the JSON document of backup.
type backupResult struct {
	profileResult
	Attempts int `json:"attempts"`
}

func runBackup(ctx context.Context, c *cli, args []string) error {
	fs := c.flags(`Backs up the session data of a Chromium profile directory (Default/IndexedDB and
Default/Local Storage, as RemoteAuth does) to a store, streamed, replacing the session's
previous archive atomically: if anything fails, the store keeps the previous archive. The
directory's name must be RemoteAuth-<clientId> (or RemoteAuth), as RemoteAuth lays profiles out;
the store's session name is --session, by default that directory name. Close the browser first,
or files that change during the backup make it start again. A save the store refuses is tried
3 times.`,
		`wwebstore backup --store redis://localhost:6379 --dir .wwebjs_auth/RemoteAuth-alice`)
	storeURL := c.storeFlag(fs, "store", EnvStore, "the store")
	dir := fs.String("dir", "", "the profile directory, <dataPath>/RemoteAuth-<clientId> (required)")
	session := fs.String("session", "", "the session name in the store (default: the profile directory's name)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("no profile directory: give --dir DIR (such as .wwebjs_auth/RemoteAuth-alice)")
	}
	if *session == "" {
		*session = filepath.Base(filepath.Clean(*dir))
	}
	if err := checkSession(*session); err != nil {
		return err
	}
	s, p, rawURL, err := c.openProfile(ctx, *storeURL, *dir, *session, "backup")
	if err != nil {
		return err
	}
	res, err := s.Backup(ctx)
	p.finish()
	if err != nil {
		return fmt.Errorf("back up %s to session %q of %s: %w (the store keeps its previous archive)", *dir, *session, c.storeName(rawURL), err)
	}
	out := backupResult{profileResult{Store: c.storeName(rawURL), Session: *session, Dir: *dir, Files: res.Files, Bytes: res.Bytes,
		ArchiveSize: res.ArchiveSize, Seconds: res.Duration.Seconds()}, res.Attempts}
	return c.result(out, func(w io.Writer) {
		fmt.Fprintf(w, "backed up %s to session %s of %s: %d files, %s -> archive of %s in %s (%s)\n",
			*dir, *session, out.Store, res.Files, mib(res.Bytes), mib(res.ArchiveSize), res.Duration.Round(time.Millisecond), rate(res.Bytes, res.Duration))
	})
}

func runRestore(ctx context.Context, c *cli, args []string) error {
	fs := c.flags(`Restores a session from a store into a profile directory with the engine's safety: the
archive is downloaded into a temporary file beside the directory, checked whole (safe names,
limits, every CRC), extracted beside it, and only then swapped in for the directory. If anything
fails, the directory is left as it was. A restored directory holds only what the archive holds.
The directory's name must be RemoteAuth-<clientId> (or RemoteAuth), as RemoteAuth lays profiles
out; by default it is .wwebjs_auth/<session>. Start the browser only after the restore.`,
		`wwebstore restore --store s3://my-bucket/sessions --session RemoteAuth-alice --dir .wwebjs_auth/RemoteAuth-alice`)
	storeURL := c.storeFlag(fs, "store", EnvStore, "the store")
	session := fs.String("session", "", "the session name in the store, such as RemoteAuth-alice (required)")
	dir := fs.String("dir", "", "the profile directory to restore into (default .wwebjs_auth/<session>)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if err := checkSession(*session); err != nil {
		return err
	}
	if *dir == "" {
		*dir = filepath.Join(remoteauth.DefaultDataPath, *session)
	}
	s, p, rawURL, err := c.openProfile(ctx, *storeURL, *dir, *session, "restore")
	if err != nil {
		return err
	}
	res, err := s.Restore(ctx)
	p.finish()
	if err != nil {
		return fmt.Errorf("restore session %q of %s into %s: %w (the directory is unchanged)", *session, c.storeName(rawURL), *dir, err)
	}
	if !res.Found {
		return fmt.Errorf("%w: %s has no session %q (list its sessions with: wwebstore ls); %s is unchanged", remoteauth.ErrNotFound, c.storeName(rawURL), *session, *dir)
	}
	out := profileResult{Store: c.storeName(rawURL), Session: *session, Dir: *dir, Files: res.Files, Bytes: res.Bytes,
		ArchiveSize: res.ArchiveSize, Seconds: res.Duration.Seconds()}
	return c.result(out, func(w io.Writer) {
		fmt.Fprintf(w, "restored session %s of %s into %s: archive of %s -> %d files, %s in %s (%s)\n",
			*session, out.Store, *dir, mib(res.ArchiveSize), res.Files, mib(res.Bytes), res.Duration.Round(time.Millisecond), rate(res.Bytes, res.Duration))
	})
}
