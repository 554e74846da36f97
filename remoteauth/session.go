package remoteauth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultDataPath         = "./.wwebjs_auth"
	DefaultBackupInterval   = 5 * time.Minute
	MinBackupInterval       = time.Minute
	DefaultCompression      = 5
	DefaultSnapshotAttempts = 5
)

// DefaultKeptDirs are the profile directories that RemoteAuth archives: together they hold a
// WhatsApp Web login. Everything else in a Chromium profile (caches, service workers) is rebuilt
// by the browser.
var DefaultKeptDirs = []string{"Default/IndexedDB", "Default/Local Storage"}

// RetryPolicy says how a failed save is retried: after InitialDelay, doubling up to MaxDelay,
// each delay with ±20 % jitter, MaxAttempts attempts in all, and never past the context's end.
type RetryPolicy struct {
	MaxAttempts  int           // default 5
	InitialDelay time.Duration // default 1 s
	MaxDelay     time.Duration // default 30 s
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.InitialDelay <= 0 {
		p.InitialDelay = time.Second
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	return p
}

// Options configure a Session. The zero value of every field takes its default.
type Options struct {
	// ClientID tells sessions apart, as in RemoteAuth: it must match ^[-_A-Za-z0-9]+$. The
	// session is named "RemoteAuth-<ClientID>", or "RemoteAuth" without one.
	ClientID string

	// DataPath is the directory that holds the profile directory <DataPath>/<session name> and
	// the restore's temporary files. Default "./.wwebjs_auth", as in RemoteAuth.
	DataPath string

	// BackupInterval is the time between two periodic backups taken by Run. Default 5 minutes;
	// at least one minute (MinBackupInterval), as in RemoteAuth. An unchanged profile costs a
	// directory walk and uploads nothing.
	BackupInterval time.Duration

	// KeptDirs are the directories of the profile, relative to it with '/' separators, that are
	// archived. Default DefaultKeptDirs.
	KeptDirs []string

	// Logger receives the engine's logs. Default: none.
	Logger *slog.Logger

	// OnBackup, if set, is called after every backup, with its outcome: saved, unchanged or
	// failed. It is called from the goroutine that ran the backup and should return quickly.
	OnBackup func(BackupResult)

	// Limits bound what Restore accepts. Zero fields take DefaultExtractLimits.
	Limits ExtractLimits

	// Compression is the deflate level of the archive, 1 (fastest) to 9 (smallest). Default 5.
	// Files that do not shrink are stored as they are, whatever the level.
	Compression int

	// Retry says how saves that fail at the store are retried. Defaults in RetryPolicy.
	Retry RetryPolicy

	// SnapshotAttempts bounds how often a snapshot is taken again when the browser rewrote the
	// profile under it (a LevelDB compaction). Default 5.
	SnapshotAttempts int

	// Concurrency is the number of files compressed at once. Default GOMAXPROCS.
	Concurrency int

	// Lease says how the Session leases its session from a store that implements Leaser, so
	// that two instances never both write it. On by default; see LeaseOptions.
	Lease LeaseOptions
}

// BackupResult is the outcome of one backup, given to Options.OnBackup and returned by Backup.
type BackupResult struct {
	Session  string
	Start    time.Time
	Duration time.Duration
	// Unchanged is true when the profile had not changed since the last save or restore of this
	// Session, so nothing was uploaded.
	Unchanged   bool
	Files       int   // files archived
	Bytes       int64 // their bytes
	ArchiveSize int64 // bytes sent to the store
	// Attempts counts the uploads started: more than one when the store failed or the profile
	// changed under a snapshot.
	Attempts int
	Err      error // nil on success
}

// RestoreResult is the outcome of Restore.
type RestoreResult struct {
	// Found is false when the store has no archive of the session; the local profile is then
	// left as it is.
	Found       bool
	ArchiveSize int64
	Files       int
	Bytes       int64
	Duration    time.Duration

	// Version is the ID of the archive restored (see ArchiveVersion), when the store implements
	// History; empty otherwise.
	Version string
	// FellBack is true when the newest archive failed verification and an older one that the
	// store kept was restored instead. Skipped says why.
	FellBack bool
	// Skipped holds, newest first, why each archive newer than the restored one was refused:
	// Skipped[0] is the newest archive's error. Each error names the archive's ID and wraps
	// ErrCorruptArchive, ErrUnsafeArchive or ErrArchiveTooLarge. When every kept archive was
	// refused, Restore fails and Skipped holds all their errors.
	Skipped []error
}

// Session is the RemoteAuth engine for one browser profile: it restores the profile from a Store
// before the browser starts, backs it up once or periodically while the browser runs, takes a
// final backup on Close, and deletes it on Delete (logout). Its methods are safe for concurrent
// use; backups, restores and deletes never overlap.
type Session struct {
	store   Store
	name    string
	profile string
	data    string
	opts    Options
	log     *slog.Logger

	busy chan struct{} // a token: held while a restore, backup or delete runs

	mu      sync.Mutex
	closed  bool
	stop    chan struct{} // closed by Close and Delete: stops Run
	saved   *[sha256.Size]byte
	runDone chan struct{}
	running bool
	lease   sessionLease // see session_lease.go
}

// NewSession returns a Session that keeps its profile in store. It checks opts, so that a bad
// configuration fails here rather than at the first restore or backup: a nil store, a ClientID
// outside ^[-_A-Za-z0-9]+$, a BackupInterval under MinBackupInterval, an unsafe KeptDirs entry, a
// Compression outside 1–9, and a DataPath where files cannot be created (a read-only file system,
// a path under a regular file). To find that out it creates and removes one empty file, named
// ".wwebstore-probe-*", in DataPath, or in its nearest existing parent when DataPath does not
// exist yet; it creates nothing else on disk.
func NewSession(store Store, opts *Options) (*Session, error) {
	if store == nil {
		return nil, errors.New("remoteauth: NewSession: the Store is nil; pass one, such as filestore.New(dir, nil) or the result of remoteauth.OpenStore(ctx, url)")
	}
	if v := reflect.ValueOf(store); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("remoteauth: NewSession: the Store is a nil %T; pass the store that its constructor returned, after checking its error", store)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	name, err := SessionName(o.ClientID)
	if err != nil {
		return nil, err
	}
	if o.DataPath == "" {
		o.DataPath = DefaultDataPath
	}
	switch {
	case o.BackupInterval == 0:
		o.BackupInterval = DefaultBackupInterval
	case o.BackupInterval < MinBackupInterval:
		return nil, fmt.Errorf("remoteauth: BackupInterval %v is shorter than the minimum %v: set at least %v, or 0 for the default %v (a backup is also taken on Close)", o.BackupInterval, MinBackupInterval, MinBackupInterval, DefaultBackupInterval)
	}
	if o.KeptDirs == nil {
		o.KeptDirs = DefaultKeptDirs
	}
	for _, k := range o.KeptDirs {
		if err := checkEntryName(k); err != nil {
			return nil, fmt.Errorf("remoteauth: kept directory %q: %v", k, err)
		}
	}
	switch {
	case o.Compression == 0:
		o.Compression = DefaultCompression
	case o.Compression < 1 || o.Compression > 9:
		return nil, fmt.Errorf("remoteauth: Compression %d is not a deflate level from 1 to 9 (or 0 for the default %d)", o.Compression, DefaultCompression)
	}
	if err := checkDataPath(o.DataPath); err != nil {
		return nil, fmt.Errorf("remoteauth: DataPath %q cannot hold the profile: %w; set Options.DataPath to a writable directory (on a read-only disk, one under os.TempDir())", o.DataPath, err)
	}
	if o.SnapshotAttempts <= 0 {
		o.SnapshotAttempts = DefaultSnapshotAttempts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = runtime.GOMAXPROCS(0)
	}
	o.Retry = o.Retry.withDefaults()
	o.Limits = o.Limits.withDefaults()
	if o.Lease, err = o.Lease.withDefaults(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Session{
		store:   store,
		name:    name,
		data:    o.DataPath,
		profile: filepath.Join(o.DataPath, name),
		opts:    o,
		log:     log.With("session", name),
		busy:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		lease:   newSessionLease(store, o.Lease),
	}, nil
}

// checkDataPath reports why files cannot be created in dir, or in its nearest existing parent
// when dir does not exist, by creating and removing a probe file there.
func checkDataPath(dir string) error {
	p := dir
	for {
		info, err := os.Stat(p)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			break
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) || parent == p {
			return err // a path under a regular file fails here, with ENOTDIR
		}
		p = parent
	}
	f, err := os.CreateTemp(p, ".wwebstore-probe-*")
	if err != nil {
		return fmt.Errorf("cannot create files in %s: %w", p, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// Name returns the session name used in the store: "RemoteAuth-<clientId>" or "RemoteAuth".
func (s *Session) Name() string { return s.name }

// ProfileDir returns the browser's user-data directory: <DataPath>/<Name()>.
func (s *Session) ProfileDir() string { return s.profile }

// acquire takes the busy token, waiting for a running operation to end.
func (s *Session) acquire(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	select {
	case s.busy <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Session) release() { <-s.busy }

// Restore brings the profile back from the store; call it before the browser starts. The archive
// is fetched into a temporary file in DataPath, checked whole (safe names, limits, every CRC),
// extracted into a temporary directory beside the profile, and only then swapped in for the
// profile directory. A store error or a bad archive leaves the local profile exactly as it was.
// When the store has no archive of the session, the local profile is kept and Found is false.
//
// When the Session leases its session (see LeaseOptions), Restore first takes the lease, waiting
// up to Options.Lease.Wait while another instance holds it (then the error wraps ErrLeaseHeld
// and names the holder), so that it restores the archive that instance saved last.
//
// When the store implements History (and its Versions does not say errors.ErrUnsupported: a
// wrapper of a store without History), Restore lists the kept archives and restores the newest
// that passes verification: if the newest is refused (corrupt, truncated, a bad CRC, unsafe
// entries, over Options.Limits), it tries the one before, and so on. Falling back is logged as a
// warning naming the reason, and reported in RestoreResult (FellBack, Version, Skipped). After a
// fall-back, the next backup uploads the profile even if it has not changed, so that the store's
// newest archive is a good one again. If every kept archive is refused, Restore returns an error
// wrapping the newest archive's error and leaves the profile as it was.
//
// Only a refused archive is a reason to fall back. A store error (a network failure, a timeout,
// ctx ending) or a local one (a full disk) is returned at once: it says nothing about the newest
// archive, and restoring an older login over it would throw away the newer state (a WhatsApp
// Web login that moved on since) for a failure that a retry may fix. A kept archive that was
// evicted or deleted between the listing and its download (another process saving or
// deleting the session) makes Restore list the archives again, at most maxListings (3) times.
//
// As in RemoteAuth, a restored profile holds only what the archive holds: the rest of the old
// profile (caches) is removed.
func (s *Session) Restore(ctx context.Context) (RestoreResult, error) {
	if err := s.acquire(ctx); err != nil {
		return RestoreResult{}, err
	}
	defer s.release()
	start := time.Now()
	if err := s.ensureLease(ctx, s.stop); err != nil {
		s.log.Error("restore failed; the local profile is unchanged", "err", err)
		return RestoreResult{}, fmt.Errorf("remoteauth: restore %s: %w", s.name, err)
	}
	res, err := s.restore(ctx)
	res.Duration = time.Since(start)
	if err != nil {
		s.log.Error("restore failed; the local profile is unchanged", "err", err)
		return res, fmt.Errorf("remoteauth: restore %s: %w", s.name, err)
	}
	s.log.Info("restored", "found", res.Found, "version", res.Version, "fell_back", res.FellBack, "archive_bytes", res.ArchiveSize, "files", res.Files, "bytes", res.Bytes, "duration", res.Duration)
	return res, nil
}

func (s *Session) restore(ctx context.Context) (RestoreResult, error) {
	if err := os.MkdirAll(s.data, 0o700); err != nil {
		return RestoreResult{}, err
	}
	s.removeLeftovers()
	tmp, err := os.CreateTemp(s.data, s.tempPrefix("restore")+"*.zip")
	if err != nil {
		return RestoreResult{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var (
		res RestoreResult
		dir string
	)
	if h, ok := s.store.(History); ok {
		res, dir, err = s.unpackKept(ctx, h, tmp)
	} else {
		res, dir, err = s.unpackNewest(ctx, tmp)
	}
	if err != nil {
		return res, err
	}
	if !res.Found {
		s.log.Info("no remote session; keeping the local profile")
		return res, nil
	}
	if err := s.swapIn(dir); err != nil {
		os.RemoveAll(dir)
		return res, err
	}
	if res.FellBack {
		// The store's newest archive is a damaged one: leave s.saved unset, so that the next
		// backup uploads this profile over it even if the browser has not changed it.
		return res, nil
	}
	// The profile now matches the remote archive: a backup before the browser changes it has
	// nothing to upload.
	if l, err := listProfile(s.profile, s.opts.KeptDirs); err == nil {
		fp := l.fingerprint()
		s.mu.Lock()
		s.saved = &fp
		s.mu.Unlock()
	}
	return res, nil
}

// unpack fetches one archive with extract into tmp (emptied first), checks it and extracts it
// into a new temporary directory beside the profile, which it returns. n is the number of bytes
// fetched, also on failure; res.Found and res.ArchiveSize are set once the fetch succeeded.
func (s *Session) unpack(ctx context.Context, tmp *os.File, extract func(io.Writer) error) (res RestoreResult, dir string, n int64, err error) {
	if err := tmp.Truncate(0); err != nil {
		return res, "", 0, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return res, "", 0, err
	}
	bw := bufio.NewWriterSize(tmp, 1<<20)
	lw := &limitedWriter{w: bw, max: s.opts.Limits.MaxArchiveSize}
	if err := extract(lw); err != nil {
		return res, "", lw.n, err
	}
	if err := bw.Flush(); err != nil {
		return res, "", lw.n, err
	}
	res = RestoreResult{Found: true, ArchiveSize: lw.n}
	dir, err = os.MkdirTemp(s.data, s.tempPrefix("restore"))
	if err != nil {
		return res, "", lw.n, err
	}
	os.Remove(dir) // ExtractArchive creates it
	stats, err := ExtractArchive(ctx, tmp, lw.n, dir, s.opts.Limits)
	if err != nil {
		return res, "", lw.n, err
	}
	res.Files, res.Bytes = stats.Files, stats.Bytes
	return res, dir, lw.n, nil
}

// unpackNewest unpacks the archive that Store.Extract returns: the restore of a store without
// History. res.Found is false when the session has no archive.
func (s *Session) unpackNewest(ctx context.Context, tmp *os.File) (RestoreResult, string, error) {
	res, dir, n, err := s.unpack(ctx, tmp, func(w io.Writer) error { return s.store.Extract(ctx, s.name, w) })
	if errors.Is(err, ErrNotFound) && n == 0 {
		return RestoreResult{}, "", nil
	}
	return res, dir, err
}

// maxListings bounds how often unpackKept lists the kept archives: it lists them again when one
// it listed is gone by the time it is fetched (another process saved or deleted the session).
const maxListings = 3

// unpackKept unpacks the newest archive of a History store that passes verification, trying
// older ones when the newer are refused (see Restore). res.Found is false when the session has
// no archive. A store that wraps one without History (Versions says errors.ErrUnsupported) is
// restored as one without History, by unpackNewest.
func (s *Session) unpackKept(ctx context.Context, h History, tmp *os.File) (RestoreResult, string, error) {
	var gone error
	for range maxListings {
		versions, err := h.Versions(ctx, s.name)
		if errors.Is(err, errors.ErrUnsupported) {
			s.log.Debug("the store keeps no previous archives; restoring the newest alone", "reason", err)
			return s.unpackNewest(ctx, tmp)
		}
		if err != nil {
			return RestoreResult{}, "", err
		}
		if len(versions) == 0 {
			return RestoreResult{}, "", nil
		}
		var skipped []error
		gone = nil
	walk:
		for i, v := range versions {
			res, dir, n, err := s.unpack(ctx, tmp, func(w io.Writer) error { return h.ExtractVersion(ctx, s.name, v.ID, w) })
			switch {
			case err == nil:
				res.Version, res.FellBack, res.Skipped = v.ID, i > 0, skipped
				if res.FellBack {
					s.log.Warn("restored an older archive because the newest failed verification",
						"version", v.ID, "newest", versions[0].ID, "reason", skipped[0], "refused", len(skipped))
				}
				return res, dir, nil
			case errors.Is(err, ErrNotFound) && n == 0:
				gone = fmt.Errorf("archive %s was removed after it was listed (the session is being saved or deleted elsewhere): %w", v.ID, err)
				break walk // list again
			case isArchiveFault(err):
				err = fmt.Errorf("archive %s (%d of %d kept): %w", v.ID, i+1, len(versions), err)
				skipped = append(skipped, err)
				if i+1 < len(versions) {
					s.log.Warn("archive failed verification; trying the previous one", "version", v.ID, "err", err)
				}
			default:
				return RestoreResult{Skipped: skipped}, "", fmt.Errorf("archive %s: %w", v.ID, err)
			}
		}
		if gone == nil {
			err := skipped[0]
			if len(skipped) > 1 {
				err = fmt.Errorf("%w (and the %d older kept archives failed verification too)", err, len(skipped)-1)
			}
			return RestoreResult{Found: true, Skipped: skipped}, "", err
		}
		s.log.Info("a kept archive was removed while restoring; listing the archives again", "err", gone)
	}
	return RestoreResult{}, "", fmt.Errorf("gave up after listing the kept archives %d times: %w", maxListings, gone)
}

// isArchiveFault reports whether err is a refusal of the archive itself: the errors that make
// Restore fall back to an older archive.
func isArchiveFault(err error) bool {
	return errors.Is(err, ErrCorruptArchive) || errors.Is(err, ErrUnsafeArchive) || errors.Is(err, ErrArchiveTooLarge)
}

// swapIn replaces the profile directory with dir. The old profile is renamed aside first and
// removed only once dir is in place; if that fails, it is put back.
func (s *Session) swapIn(dir string) error {
	old := ""
	if _, err := os.Lstat(s.profile); err == nil {
		old = filepath.Join(s.data, s.tempPrefix("old")+fmt.Sprintf("%d", rand.Uint64()))
		if err := os.Rename(s.profile, old); err != nil {
			return err
		}
	}
	if err := os.Rename(dir, s.profile); err != nil {
		if old != "" {
			if rerr := os.Rename(old, s.profile); rerr != nil {
				return fmt.Errorf("%w (and putting the old profile back failed: %v; it is at %s)", err, rerr, old)
			}
		}
		return err
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			s.log.Warn("could not remove the old profile", "path", old, "err", err)
		}
	}
	return nil
}

// tempPrefix names the temporary files and directories of this session in DataPath:
// ".<session>.restore-…" and ".<session>.old-…". They are hidden, and the session name keeps two
// sessions sharing a DataPath apart.
func (s *Session) tempPrefix(kind string) string { return "." + s.name + "." + kind + "-" }

// removeLeftovers removes the temporary files that a restore killed half-way left behind.
// A restore killed between its two renames left the old profile aside and none in place: that old
// profile is put back first, so that it is kept if this restore fails.
func (s *Session) removeLeftovers() {
	entries, err := os.ReadDir(s.data)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, s.tempPrefix("old")) {
			if _, err := os.Lstat(s.profile); errors.Is(err, fs.ErrNotExist) {
				if err := os.Rename(filepath.Join(s.data, n), s.profile); err == nil {
					s.log.Warn("put back the profile that an interrupted restore had set aside", "from", n)
					continue
				}
			}
		}
		if strings.HasPrefix(n, s.tempPrefix("restore")) || strings.HasPrefix(n, s.tempPrefix("old")) {
			p := filepath.Join(s.data, n)
			if err := os.RemoveAll(p); err != nil {
				s.log.Warn("could not remove a leftover temporary file", "path", p, "err", err)
			}
		}
	}
}

// limitedWriter fails once more than max bytes were written.
type limitedWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.max {
		return 0, &ArchiveError{Kind: ErrArchiveTooLarge, Reason: fmt.Sprintf("the store sent more than MaxArchiveSize %d bytes", l.max)}
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}

// Backup takes one backup now, unless the profile has not changed since the last save or
// restore. The snapshot is streamed to the store as it is made. If the browser rewrites the
// profile under the snapshot, the upload is abandoned (the store keeps the previous archive) and
// the snapshot taken again, up to Options.SnapshotAttempts times. A save that fails at the store
// is retried as Options.Retry says, within ctx. Backup waits for a backup, restore or delete
// that is running. The outcome is also given to Options.OnBackup and logged.
func (s *Session) Backup(ctx context.Context) (BackupResult, error) {
	if err := s.acquire(ctx); err != nil {
		return BackupResult{Session: s.name, Err: err}, err
	}
	defer s.release()
	return s.backup(ctx, s.stop)
}

// backup takes one backup and reports it. abort, when closed, ends a wait for the session lease
// (see ensureLease).
func (s *Session) backup(ctx context.Context, abort <-chan struct{}) (BackupResult, error) {
	res := BackupResult{Session: s.name, Start: time.Now()}
	err := s.saveWithRetries(ctx, &res, abort)
	res.Duration = time.Since(res.Start)
	if err != nil {
		err = fmt.Errorf("remoteauth: back up %s: %w", s.name, err)
		res.Err = err
		s.log.Error("backup failed; the previous remote archive is kept", "attempts", res.Attempts, "err", err)
	} else if res.Unchanged {
		s.log.Debug("profile unchanged; nothing uploaded", "files", res.Files, "duration", res.Duration)
	} else {
		s.log.Info("saved", "files", res.Files, "bytes", res.Bytes, "archive_bytes", res.ArchiveSize, "attempts", res.Attempts, "duration", res.Duration)
	}
	if s.opts.OnBackup != nil {
		s.opts.OnBackup(res)
	}
	return res, err
}

func (s *Session) saveWithRetries(ctx context.Context, res *BackupResult, abort <-chan struct{}) error {
	if err := s.ensureLease(ctx, abort); err != nil {
		return err
	}
	snap := &snapshotter{level: s.opts.Compression, workers: s.opts.Concurrency}
	storeFailures, snapshots := 0, 0
	delay := s.opts.Retry.InitialDelay
	for {
		l, err := listProfile(s.profile, s.opts.KeptDirs)
		if errors.Is(err, ErrProfileChanged) && snapshots+1 < s.opts.SnapshotAttempts {
			snapshots++
			continue
		}
		if err != nil {
			return err
		}
		res.Files, res.Bytes = l.files, l.bytes
		if l.files == 0 {
			return fmt.Errorf("%w: %s has no files under %s", ErrNothingToBackUp, s.profile, strings.Join(s.opts.KeptDirs, ", "))
		}
		fp := l.fingerprint()
		s.mu.Lock()
		unchanged := s.saved != nil && *s.saved == fp
		s.mu.Unlock()
		if unchanged {
			res.Unchanged = true
			return nil
		}
		res.Attempts++
		n, snapErr, storeErr := s.upload(ctx, snap, l)
		switch {
		case snapErr == nil && storeErr == nil:
			res.ArchiveSize = n
			s.mu.Lock()
			s.saved = &fp
			s.mu.Unlock()
			return nil
		case errors.Is(snapErr, ErrProfileChanged):
			snapshots++
			if snapshots >= s.opts.SnapshotAttempts {
				return fmt.Errorf("gave up after %d snapshots: %w", snapshots, snapErr)
			}
			s.log.Debug("the profile changed during the snapshot; taking it again", "err", snapErr)
		case snapErr != nil:
			return snapErr
		case errors.Is(storeErr, ErrLeaseLost):
			s.loseLease(storeErr) // never retried: another instance owns the session now
			return s.leaseLost()
		default:
			storeFailures++
			if ctx.Err() != nil || storeFailures >= s.opts.Retry.MaxAttempts {
				return storeErr
			}
			wait := jitter(delay)
			s.log.Warn("save failed; retrying", "attempt", storeFailures, "retry_in", wait, "err", storeErr)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (last store error: %w)", ctx.Err(), storeErr)
			}
			delay = min(2*delay, s.opts.Retry.MaxDelay)
		}
	}
}

// jitter spreads d by ±20 %, so that many processes restarted together do not retry together.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// upload streams a snapshot of l into the store. It returns the archive size and, separately, the
// snapshot's error and the store's.
func (s *Session) upload(ctx context.Context, snap *snapshotter, l *listing) (n int64, snapErr, storeErr error) {
	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw}
	done := make(chan error, 1)
	go func() {
		err := snap.write(ctx, cw, l)
		if err == nil {
			// The walk is over: if files came or went meanwhile, the archive may pair a LevelDB
			// MANIFEST with the wrong tables. Fail the upload before the store sees EOF.
			var now *listing
			now, err = listProfile(s.profile, s.opts.KeptDirs)
			if err == nil && !now.sameNames(l) {
				err = fmt.Errorf("%w: files were added or removed", ErrProfileChanged)
			}
		}
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
		done <- err
	}()
	storeErr = s.save(ctx, pr)
	pr.CloseWithError(errStoreStopped) // unblocks the writer if the store quit early
	snapErr = <-done
	switch {
	case snapErr == nil && storeErr == nil:
		return cw.n, nil, nil
	case snapErr != nil && !errors.Is(snapErr, errStoreStopped) && ctx.Err() == nil:
		return 0, snapErr, nil // the store saw the snapshot fail and kept its previous archive
	case storeErr != nil:
		return 0, nil, storeErr
	default:
		return 0, nil, errors.New("the store returned before reading the whole archive")
	}
}

// errStoreStopped is what the snapshot writer sees when the store stops reading.
var errStoreStopped = errors.New("the store stopped reading")

// Run takes a backup now and then every BackupInterval, until ctx ends or Close or Delete is
// called; then it returns nil. Start it once the browser is logged in. A tick that comes while a
// backup still runs is skipped. Failures are logged and given to OnBackup, never returned: a
// failed periodic backup is retried at the next tick and never deletes anything. Run returns an
// error only if it is already running or the Session is closed, or when the session lease (see
// LeaseOptions) could not be taken within Options.Lease.Wait (ErrLeaseHeld) or was lost
// (ErrLeaseLost): then no backup is taken any more.
func (s *Session) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.running {
		s.mu.Unlock()
		return errors.New("remoteauth: Run is already running")
	}
	s.running = true
	s.runDone = make(chan struct{})
	done := s.runDone
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		close(done)
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ticker := time.NewTicker(s.opts.BackupInterval)
	defer ticker.Stop()
	for {
		select {
		case s.busy <- struct{}{}:
			res, _ := s.backup(ctx, s.stop) // reported through the log and OnBackup
			s.release()
			if ctx.Err() == nil && (errors.Is(res.Err, ErrLeaseHeld) || errors.Is(res.Err, ErrLeaseLost)) {
				return res.Err
			}
		default:
			s.log.Debug("a backup is still running; skipping this tick")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.lease.lostCh:
			return fmt.Errorf("remoteauth: run %s: %w", s.name, s.leaseLost())
		case <-ticker.C:
		}
	}
}

// Close stops Run (a periodic backup under way is abandoned; the store keeps the previous
// archive) and takes a final backup within ctx: give it the
// time the platform allows before it kills the process (a Heroku dyno has 30 s after SIGTERM).
// Close the browser first, so that it flushes Local Storage and releases its files. An unchanged
// profile uploads nothing. Close returns the final backup's error; after Close, the Session's
// methods return ErrClosed. When the Session leases its session (see LeaseOptions), the final
// backup is saved under the lease, which Close then releases within ctx, so that the next
// instance restores that backup at once; a Session whose lease was lost takes no final backup
// and returns an error wrapping ErrLeaseLost.
func (s *Session) Close(ctx context.Context) error {
	if err := s.shutdown(ctx); err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		return fmt.Errorf("remoteauth: close %s: no final backup: %w", s.name, err)
	}
	defer s.release()
	defer s.releaseLease(ctx) // after the final backup
	if _, err := os.Stat(s.profile); errors.Is(err, os.ErrNotExist) {
		return nil // never started: nothing to keep
	}
	_, err := s.backup(ctx, nil) // Close has stopped Run: a wait for the lease goes on within ctx
	return err
}

// Delete logs the session out for good: it stops Run, deletes the remote archive and removes
// the local profile. It is the only method that deletes a remote archive; call it on an explicit
// logout, never on a disconnect or a conflict. After Delete, the Session's methods return
// ErrClosed. When the Session leases its session (see LeaseOptions), Delete takes the lease if
// it does not hold it (waiting as Options.Lease.Wait says), deletes under it, and releases it:
// an instance whose lease was lost deletes nothing (ErrLeaseLost).
func (s *Session) Delete(ctx context.Context) error {
	if err := s.shutdown(ctx); err != nil {
		return err
	}
	defer s.release()
	defer s.releaseLease(ctx)
	if err := s.ensureLease(ctx, nil); err != nil {
		return fmt.Errorf("remoteauth: delete %s: nothing deleted: %w", s.name, err)
	}
	if err := s.deleteRemote(ctx); err != nil {
		return fmt.Errorf("remoteauth: delete %s: %w", s.name, err)
	}
	if err := os.RemoveAll(s.profile); err != nil {
		return fmt.Errorf("remoteauth: delete %s: the remote archive is deleted, but the local profile is not: %w", s.name, err)
	}
	s.log.Info("deleted the remote archive and the local profile")
	return nil
}

// shutdown marks the Session closed, stops Run, waits for it to return and takes the busy token
// (the caller releases it), waiting for a running operation to end within ctx.
func (s *Session) shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.stop)
	done := s.runDone
	running := s.running
	s.mu.Unlock()
	if running {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case s.busy <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
