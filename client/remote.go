package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// FollowUpBackupDelay is the time between RemoteAuth's first backup, taken as soon as the client
// is Ready, and a second one. Chromium writes Local Storage to disk seconds after the page does
// (about 5 s, measured), so the first backup can miss the newest keys; the second catches them. An
// unchanged profile uploads nothing.
const FollowUpBackupDelay = 30 * time.Second

// RemoteAuth keeps the login in a remote store, as whatsapp-web.js's RemoteAuth: the profile
// directory <DataPath>/RemoteAuth-<ClientID> is restored from Store before Chromium starts, backed
// up as soon as the client is Ready, again FollowUpBackupDelay later, then every BackupInterval,
// and a last time by Destroy, after Chromium has closed and flushed its files. It runs on
// remoteauth.Session, which restores and backs up safely (see package remoteauth).
//
// Only Client.Logout deletes the remote archive (and the local profile). A disconnect — a
// conflict, a logout from the phone, another state that ends the session — stops the backups
// and deletes nothing; neither does a failed backup, which is reported as a
// RemoteSessionSaveFailed event and tried again at the next tick. Nothing is backed up before the
// client was Ready in this run, nor after a disconnect: Destroy then ends the session without a
// final backup (remoteauth.Session.Abandon), so a profile that is not logged in never replaces a
// good archive.
//
// With a store that grants leases, the session is leased from Initialize to Destroy or Logout
// (see Lease): a second instance of the same session waits for the first to end instead of
// overwriting it, and if another instance takes the session over, backups stop.
type RemoteAuth struct {
	BaseAuth
	// Store keeps the archives. Set Store or StoreURL.
	Store remoteauth.Store
	// StoreURL, when Store is nil, names the store to open with remoteauth.OpenStore in
	// Initialize: "redis://…", "s3://…", "file:///…" (import the store's package for its
	// scheme). RemoteAuth closes a store it opened, if it is an io.Closer, at the end of Destroy
	// and of Logout.
	StoreURL string
	// ClientID tells sessions apart; it must match ^[-_A-Za-z0-9]+$. The session is named
	// "RemoteAuth-<ClientID>" (or "RemoteAuth"), as in whatsapp-web.js.
	ClientID string
	// DataPath is the directory that holds the profile. Default DefaultDataPath.
	DataPath string
	// BackupInterval is the time between periodic backups: default
	// remoteauth.DefaultBackupInterval (5 minutes), at least remoteauth.MinBackupInterval (one
	// minute).
	BackupInterval time.Duration
	// Retry says how a backup that fails at the store is retried within one tick; defaults in
	// remoteauth.RetryPolicy.
	Retry remoteauth.RetryPolicy
	// Lease says how the session is leased from a store that grants leases, so that two
	// instances of one session never overwrite each other (see remoteauth.LeaseOptions; on by
	// default). Initialize then waits, up to Lease.Wait (2 minutes by default), for an instance
	// that still holds the session to end; Destroy and Logout release it.
	Lease remoteauth.LeaseOptions

	// tick and followUp replace BackupInterval and FollowUpBackupDelay when set (tests only).
	tick, followUp time.Duration

	session      *remoteauth.Session
	opened       io.Closer // the store opened from StoreURL
	ready        bool
	disconnected bool
	stopLoop     context.CancelFunc
	loopDone     chan struct{}
	mu           sync.Mutex // guards ready, disconnected and the loop against the backups' events
}

// ProfileDir returns the profile directory: <DataPath>/RemoteAuth-<ClientID>.
func (a *RemoteAuth) ProfileDir() (string, error) {
	name, err := remoteauth.SessionName(a.ClientID)
	if err != nil {
		return "", fmt.Errorf("client: RemoteAuth: %w", err)
	}
	data := a.DataPath
	if data == "" {
		data = DefaultDataPath
	}
	return filepath.Join(data, name), nil
}

func (a *RemoteAuth) ensureSession(ctx context.Context) error {
	if a.session != nil {
		return nil
	}
	store := a.Store
	if store == nil {
		if a.StoreURL == "" {
			return errors.New("client: RemoteAuth needs a store: set RemoteAuth.Store (a store package's New), or StoreURL to open one with remoteauth.OpenStore")
		}
		var err error
		if store, err = remoteauth.OpenStore(ctx, a.StoreURL); err != nil {
			return fmt.Errorf("client: RemoteAuth: %w", err)
		}
		if c, ok := store.(io.Closer); ok {
			a.opened = c
		}
	}
	s, err := remoteauth.NewSession(store, &remoteauth.Options{
		ClientID:       a.ClientID,
		DataPath:       a.DataPath,
		BackupInterval: a.BackupInterval,
		Retry:          a.Retry,
		Lease:          a.Lease,
		Logger:         a.Host().Logger(),
		OnBackup:       a.report,
	})
	if err != nil {
		a.release()
		return fmt.Errorf("client: RemoteAuth: %w", err)
	}
	a.session = s
	return nil
}

// release forgets the ended session (a Logout after Destroy makes a new one) and closes the store
// opened from StoreURL.
func (a *RemoteAuth) release() {
	a.session = nil
	if a.opened == nil {
		return
	}
	if err := a.opened.Close(); err != nil {
		a.Host().Logger().Warn("RemoteAuth: closing the store", "err", err)
	}
	a.opened = nil
}

// BeforeBrowser restores the profile from the store; a profile the store does not have is
// created empty. A failed restore leaves the local profile as it was and fails Initialize.
func (a *RemoteAuth) BeforeBrowser(ctx context.Context, l *Launch) error {
	if err := a.ensureSession(ctx); err != nil {
		return err
	}
	dir := a.session.ProfileDir()
	if err := refuseProfile("RemoteAuth", dir, l); err != nil {
		return err
	}
	if _, err := a.session.Restore(ctx); err != nil {
		return fmt.Errorf("client: RemoteAuth: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("client: RemoteAuth: create the profile directory: %w", err)
	}
	l.UserDataDir = dir
	return nil
}

// AfterReady takes the first backup now and starts the periodic ones. A second Ready in the same
// run starts nothing more.
func (a *RemoteAuth) AfterReady(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopLoop != nil {
		return nil
	}
	a.ready = true
	ctx, cancel := context.WithCancel(context.Background())
	a.stopLoop = cancel
	a.loopDone = make(chan struct{})
	go a.loop(ctx, a.loopDone)
	return nil
}

func (a *RemoteAuth) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	interval, followUp := a.BackupInterval, FollowUpBackupDelay
	if interval == 0 {
		interval = remoteauth.DefaultBackupInterval
	}
	if a.tick > 0 {
		interval = a.tick
	}
	if a.followUp > 0 {
		followUp = a.followUp
	}
	second := time.NewTimer(followUp)
	defer second.Stop()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		_, err := a.session.Backup(ctx) // reported by report
		if errors.Is(err, remoteauth.ErrLeaseLost) || errors.Is(err, remoteauth.ErrLeaseHeld) {
			a.Host().Logger().Error("RemoteAuth: another instance holds this session; backups stop (restart to restore its archive)", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-second.C:
		case <-ticker.C:
		}
	}
}

// report turns the outcome of every backup, the final one included, into an event. A backup
// abandoned because the loop was stopped is not reported.
func (a *RemoteAuth) report(res remoteauth.BackupResult) {
	switch {
	case errors.Is(res.Err, context.Canceled):
	case res.Err != nil:
		a.Host().Emit(RemoteSessionSaveFailed{Session: res.Session, Err: res.Err, Attempts: res.Attempts})
	case !res.Unchanged:
		a.Host().Emit(RemoteSessionSaved{
			Session:     res.Session,
			ArchiveSize: res.ArchiveSize,
			Files:       res.Files,
			Bytes:       res.Bytes,
			Duration:    res.Duration,
			Attempts:    res.Attempts,
		})
	}
}

// halt stops the periodic backups and waits for one under way to end (it is abandoned; the
// store keeps the previous archive).
func (a *RemoteAuth) halt() {
	a.mu.Lock()
	stop, done := a.stopLoop, a.loopDone
	a.stopLoop, a.loopDone = nil, nil
	a.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// Disconnect stops the backups for the rest of this run and deletes nothing: the remote archive
// keeps the last state that was seen logged in.
func (a *RemoteAuth) Disconnect(_ context.Context, reason string) error {
	a.halt()
	a.mu.Lock()
	a.disconnected = true
	a.mu.Unlock()
	a.Host().Logger().Info("RemoteAuth: disconnected; backups stop and the remote archive is kept", "reason", reason)
	return nil
}

// Destroy stops the backups and ends the session: if the client was Ready and not disconnected,
// with a final backup within ctx (remoteauth.Session.Close), otherwise without one
// (remoteauth.Session.Abandon); either way it releases the lease. Call it after the browser
// closed, which Client.Destroy does.
func (a *RemoteAuth) Destroy(ctx context.Context) error {
	a.halt()
	a.mu.Lock()
	final := a.ready && !a.disconnected
	a.ready, a.disconnected = false, false
	a.mu.Unlock()
	if a.session == nil {
		return nil
	}
	defer a.release()
	if !final {
		if err := a.session.Abandon(ctx); err != nil {
			return fmt.Errorf("client: RemoteAuth: %w", err)
		}
		return nil
	}
	if err := a.session.Close(ctx); err != nil {
		return fmt.Errorf("client: RemoteAuth: final backup: %w", err)
	}
	return nil
}

// Logout stops the backups and deletes the remote archive and the local profile.
func (a *RemoteAuth) Logout(ctx context.Context) error {
	a.halt()
	if err := a.ensureSession(ctx); err != nil {
		return err
	}
	defer a.release()
	if err := a.session.Delete(ctx); err != nil {
		return fmt.Errorf("client: RemoteAuth: logout: %w", err)
	}
	return nil
}
