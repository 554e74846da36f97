package client_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/client"
	"github.com/wwebstore/wwebstore/client/internal/fixture"
	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	filestore "github.com/wwebstore/wwebstore/stores/file"
	_ "github.com/wwebstore/wwebstore/stores/mongo"    // mongodb:// URLs
	_ "github.com/wwebstore/wwebstore/stores/postgres" // postgres:// URLs
	_ "github.com/wwebstore/wwebstore/stores/redis"    // redis:// URLs
	_ "github.com/wwebstore/wwebstore/stores/s3"       // s3:// URLs
)

func TestMain(m *testing.M) { testservers.Main(m) }

func newFileStore(t *testing.T, dir string) remoteauth.Store {
	t.Helper()
	st, err := filestore.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// remoteLogin starts a RemoteAuth client of app over store, logs it in as account with the QR
// code and waits for Ready and the first backup.
func remoteLogin(t *testing.T, app *fixture.App, auth *client.RemoteAuth, account string) (*client.Client, *recorder) {
	t.Helper()
	c, rec := newClient(t, app, client.Options{Auth: auth})
	initialize(t, c)
	scanFirstQR(t, app, rec, account)
	waitFor[client.Ready](t, rec, 1)
	saved := waitFor[client.RemoteSessionSaved](t, rec, 1)
	if saved.Session != "RemoteAuth-"+auth.ClientID || saved.ArchiveSize <= 0 || saved.Files == 0 {
		t.Fatalf("first backup: %+v, want session RemoteAuth-%s with files", saved, auth.ClientID)
	}
	return c, rec
}

func destroy(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	if err := c.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
}

func archive(t *testing.T, store remoteauth.Store, session string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := store.Extract(t.Context(), session, &b); err != nil {
		t.Fatalf("Extract %s: %v", session, err)
	}
	return b.Bytes()
}

// TestEphemeralHost is the job of RemoteAuth: a client logs in with a QR code and is backed up;
// the host's disk is wiped (the profile and its data path are deleted entirely); a new client with
// the same clientId restores the session and is Ready without a QR code, with what the page
// stored after the first backup, which only Destroy's final backup holds.
func TestEphemeralHost(t *testing.T) {
	needBrowser(t)
	t.Run("file", func(t *testing.T) { ephemeralHost(t, newFileStore(t, t.TempDir())) })
	for _, srv := range testservers.All(t) {
		t.Run(srv.Name, func(t *testing.T) {
			srv.Setenv(t)
			store, err := remoteauth.OpenStore(t.Context(), srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			ephemeralHost(t, store)
		})
	}
}

func ephemeralHost(t *testing.T, store remoteauth.Store) {
	app := fixture.Start(t, nil)
	data := filepath.Join(t.TempDir(), "dyno", ".wwebjs_auth")
	first := &client.RemoteAuth{Store: store, ClientID: "alice", DataPath: data}
	client.SetBackupTicks(first, time.Hour, time.Hour) // only the first and the final backup
	c, rec := remoteLogin(t, app, first, "alice")

	const text = "received after the first backup"
	if err := app.Message(t.Context(), "alice", text); err != nil {
		t.Fatal(err)
	}
	waitMessage(t, c, text)
	before := count[client.RemoteSessionSaved](rec.all())
	destroy(t, c)
	events := rec.waitClosed(t)
	if after := count[client.RemoteSessionSaved](events); after != before+1 {
		t.Fatalf("Destroy emitted %d RemoteSessionSaved events, want 1 (the final backup): %s", after-before, describe(events))
	}

	if err := os.RemoveAll(filepath.Dir(data)); err != nil {
		t.Fatal(err)
	}
	second := &client.RemoteAuth{Store: store, ClientID: "alice", DataPath: data}
	c2, rec2 := newClient(t, app, client.Options{Auth: second})
	initialize(t, c2)
	waitFor[client.Ready](t, rec2, 1)
	if n := count[client.QR](rec2.all()); n != 0 {
		t.Errorf("the restored client showed %d QR codes, want none", n)
	}
	if got := pageAccount(t, c2); got != "alice" {
		t.Errorf("the restored page shows account %q, want alice", got)
	}
	if msgs := pageMessages(t, c2); !slices.Contains(msgs, text) {
		t.Errorf("the restored page shows messages %q, want %q (saved by Destroy's final backup)", msgs, text)
	}
}

func TestRemoteAuthLogoutDeletesLocalAndRemote(t *testing.T) {
	app := fixture.Start(t, nil)
	store := newFileStore(t, t.TempDir())
	auth := &client.RemoteAuth{Store: store, ClientID: "alice", DataPath: t.TempDir()}
	c, rec := remoteLogin(t, app, auth, "alice")

	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	if err := c.Logout(ctx); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	events := rec.waitClosed(t)
	if last, ok := events[len(events)-1].(client.Disconnected); !ok || last.Reason != client.ReasonLogout {
		t.Errorf("last event %T%+v, want Disconnected{%s}", events[len(events)-1], events[len(events)-1], client.ReasonLogout)
	}
	if ok, err := store.SessionExists(ctx, "RemoteAuth-alice"); err != nil || ok {
		t.Errorf("after Logout, SessionExists = %v, %v; want false, nil", ok, err)
	}
	dir, err := auth.ProfileDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Logout, the profile %s: %v; want it removed", dir, err)
	}
	if app.LoggedIn("alice") {
		t.Error("after Logout, the web app's server still accepts the login")
	}
}

// A conflict (the account opened elsewhere) and a logout from the phone end the session, but
// delete neither the remote archive nor the local profile, unlike whatsapp-web.js.
func TestRemoteAuthDisconnectsDeleteNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cause  func(app *fixture.App, ctx context.Context, account string) error
		reason string
	}{
		{"conflict", (*fixture.App).Conflict, string(client.StateConflict)},
		{"logout from the phone", (*fixture.App).LogoutFromPhone, client.ReasonLogout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := fixture.Start(t, nil)
			store := newFileStore(t, t.TempDir())
			auth := &client.RemoteAuth{Store: store, ClientID: "alice", DataPath: t.TempDir()}
			_, rec := remoteLogin(t, app, auth, "alice")
			saved := archive(t, store, "RemoteAuth-alice")

			if err := tc.cause(app, t.Context(), "alice"); err != nil {
				t.Fatal(err)
			}
			if d := waitFor[client.Disconnected](t, rec, 1); d.Reason != tc.reason {
				t.Errorf("Disconnected reason %q, want %q", d.Reason, tc.reason)
			}
			rec.waitClosed(t)
			if got := archive(t, store, "RemoteAuth-alice"); !bytes.Equal(got, saved) {
				t.Errorf("the remote archive changed after the disconnect (%d bytes, was %d)", len(got), len(saved))
			}
			dir, err := auth.ProfileDir()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "Default", "IndexedDB")); err != nil {
				t.Errorf("the local profile was touched: %v", err)
			}
		})
	}
}

// A store that fails during a periodic backup is reported, the client keeps running, nothing is
// deleted, and the next tick saves once the store is back.
func TestRemoteAuthBackupOutageRecovers(t *testing.T) {
	app := fixture.Start(t, nil)
	storeDir := filepath.Join(t.TempDir(), "store")
	store := newFileStore(t, storeDir)
	auth := &client.RemoteAuth{Store: store, ClientID: "alice", DataPath: t.TempDir(), Retry: remoteauth.RetryPolicy{MaxAttempts: 1}}
	client.SetBackupTicks(auth, time.Second, time.Hour)
	c, rec := remoteLogin(t, app, auth, "alice")

	// The outage: the store's directory is replaced by a file, so every save fails.
	away := storeDir + ".away"
	if err := os.Rename(storeDir, away); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(storeDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const text = "received during the outage"
	if err := app.Message(t.Context(), "alice", text); err != nil {
		t.Fatal(err)
	}
	waitMessage(t, c, text) // the profile changed: the next tick uploads
	failed := waitFor[client.RemoteSessionSaveFailed](t, rec, 1)
	if failed.Err == nil || failed.Session != "RemoteAuth-alice" {
		t.Errorf("RemoteSessionSaveFailed = %+v, want the session and an error", failed)
	}
	savedBefore := count[client.RemoteSessionSaved](rec.all())

	// The store comes back.
	if err := os.Remove(storeDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, storeDir); err != nil {
		t.Fatal(err)
	}
	waitFor[client.RemoteSessionSaved](t, rec, savedBefore+1)
	if s := c.State(); s != client.StateConnected {
		t.Errorf("after the outage the client is in state %q, want %q", s, client.StateConnected)
	}
	if n := count[client.Disconnected](rec.all()); n != 0 {
		t.Errorf("the outage disconnected the client: %s", describe(rec.all()))
	}
	if ok, err := store.SessionExists(t.Context(), "RemoteAuth-alice"); err != nil || !ok {
		t.Errorf("after the outage, SessionExists = %v, %v; want true, nil", ok, err)
	}
}

func TestRemoteAuthRefusesAttachedBrowserAndUserDataDir(t *testing.T) {
	needBrowser(t)
	for _, tc := range []struct {
		name string
		opts client.Options
	}{
		{"attached browser", client.Options{BrowserURL: "ws://127.0.0.1:1/devtools/browser/none"}},
		{"another UserDataDir", client.Options{UserDataDir: t.TempDir()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newFileStore(t, t.TempDir())
			tc.opts.Auth = &client.RemoteAuth{Store: store, ClientID: "alice", DataPath: t.TempDir()}
			tc.opts.Logger = logger(t)
			err := client.New(tc.opts).Initialize(t.Context())
			if !errors.Is(err, client.ErrIncompatibleProfile) {
				t.Fatalf("Initialize = %v, want ErrIncompatibleProfile", err)
			}
		})
	}
}

// A process killed without Destroy loses its final backup. Chromium writes Local Storage to disk
// seconds after the page does, so the backup taken at Ready can miss the login's Local Storage
// half; the follow-up backup, FollowUpBackupDelay later, holds it. This test keeps what the store
// held once the follow-up was due, as a crash then would leave it, and restores from that.
func TestFollowUpBackupSurvivesACrash(t *testing.T) {
	app := fixture.Start(t, nil)
	store := newFileStore(t, t.TempDir())
	auth := &client.RemoteAuth{Store: store, ClientID: "alice", DataPath: t.TempDir()}
	client.SetBackupTicks(auth, time.Hour, 0) // the real FollowUpBackupDelay, no periodic backup
	c, rec := remoteLogin(t, app, auth, "alice")
	// The follow-up uploads only if the profile changed since the first backup.
	if !waitForWithin[client.RemoteSessionSaved](rec, 2, client.FollowUpBackupDelay+15*time.Second) {
		t.Logf("the follow-up backup found the profile unchanged: the first backup already held everything")
	}
	crashed := archive(t, store, "RemoteAuth-alice") // what the store holds if the process dies now
	destroy(t, c)

	afterCrash := newFileStore(t, t.TempDir())
	if err := afterCrash.Save(t.Context(), "RemoteAuth-alice", bytes.NewReader(crashed)); err != nil {
		t.Fatal(err)
	}
	c2, rec2 := newClient(t, app, client.Options{Auth: &client.RemoteAuth{Store: afterCrash, ClientID: "alice", DataPath: t.TempDir()}})
	initialize(t, c2)
	waitFor[client.Ready](t, rec2, 1)
	if n := count[client.QR](rec2.all()); n != 0 {
		t.Errorf("restored from the follow-up backup, the client showed %d QR codes, want none", n)
	}
}
