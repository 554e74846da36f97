package client_test

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/wwebstore/wwebstore/client"
	"github.com/wwebstore/wwebstore/client/internal/fixture"
)

// loginThenDestroy logs a new client with opts in through the QR code as account, waits for
// Ready and destroys it. It returns the client's events.
func loginThenDestroy(t *testing.T, app *fixture.App, opts client.Options, account string) []client.Event {
	t.Helper()
	c, rec := newClient(t, app, opts)
	initialize(t, c)
	scanFirstQR(t, app, rec, account)
	waitFor[client.Ready](t, rec, 1)
	if got := pageAccount(t, c); got != account {
		t.Fatalf("the page shows account %q, want %q", got, account)
	}
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	if err := c.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	return rec.waitClosed(t)
}

func TestNoAuthForgetsTheLogin(t *testing.T) {
	app := fixture.Start(t, nil)
	loginThenDestroy(t, app, client.Options{}, "alice")

	c, rec := newClient(t, app, client.Options{})
	initialize(t, c)
	waitFor[client.QR](t, rec, 1) // a new profile: the login is gone
	if n := count[client.Ready](rec.all()); n != 0 {
		t.Errorf("a NoAuth client was Ready without a scan (%d Ready events)", n)
	}
}

func TestLocalAuthKeepsTheLogin(t *testing.T) {
	app := fixture.Start(t, nil)
	auth := func() *client.LocalAuth {
		return &client.LocalAuth{ClientID: "alice", DataPath: filepath.Join(t.TempDir(), "auth")}
	}
	first := auth()
	loginThenDestroy(t, app, client.Options{Auth: first}, "alice")

	second := &client.LocalAuth{ClientID: first.ClientID, DataPath: first.DataPath}
	c, rec := newClient(t, app, client.Options{Auth: second})
	initialize(t, c)
	waitFor[client.Ready](t, rec, 1)
	if got := pageAccount(t, c); got != "alice" {
		t.Errorf("after a restart the page shows account %q, want alice", got)
	}
	if n := count[client.QR](rec.all()); n != 0 {
		t.Errorf("LocalAuth showed %d QR codes after a restart, want none", n)
	}
	if l := waitFor[client.LoadingScreen](t, rec, 1); l.Percent < 0 || l.Percent > 100 || l.Message == "" {
		t.Errorf("LoadingScreen %+v, want a percentage and a message", l)
	}

	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	if err := c.Logout(ctx); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	dir, err := second.Dir()
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

func TestLocalAuthRefusesAnotherUserDataDir(t *testing.T) {
	needBrowser(t)
	auth := &client.LocalAuth{ClientID: "x", DataPath: t.TempDir()}
	c := client.New(client.Options{Auth: auth, UserDataDir: t.TempDir(), Logger: logger(t)})
	err := c.Initialize(t.Context())
	if !errors.Is(err, client.ErrIncompatibleProfile) {
		t.Fatalf("Initialize = %v, want ErrIncompatibleProfile", err)
	}
}

func TestLegacySessionAuth(t *testing.T) {
	app := fixture.Start(t, nil)
	events := loginThenDestroy(t, app, client.Options{Auth: &client.LegacySessionAuth{}}, "alice")
	saved, ok := waitAuthenticated(t, events).(client.LegacySession)
	if !ok || len(saved) != len(client.LegacySessionKeys) {
		t.Fatalf("Authenticated payload = %#v, want a LegacySession with %v", saved, client.LegacySessionKeys)
	}

	t.Run("restores", func(t *testing.T) {
		c, rec := newClient(t, app, client.Options{Auth: &client.LegacySessionAuth{Session: saved}})
		initialize(t, c)
		waitFor[client.Ready](t, rec, 1)
		if got := pageAccount(t, c); got != "alice" {
			t.Errorf("the page shows account %q, want alice", got)
		}
		if n := count[client.QR](rec.all()); n != 0 {
			t.Errorf("%d QR codes shown with a saved session, want none", n)
		}
		payload := waitFor[client.Authenticated](t, rec, 1).Payload.(client.LegacySession)
		if !maps.Equal(payload, saved) {
			t.Errorf("Authenticated payload = %v, want the saved session %v", payload, saved)
		}
	})

	bad := maps.Clone(saved)
	bad["WAToken1"] = `"not-a-token"`
	t.Run("bad session", func(t *testing.T) {
		c, rec := newClient(t, app, client.Options{Auth: &client.LegacySessionAuth{Session: bad}})
		err := c.Initialize(t.Context())
		if !errors.Is(err, client.ErrAuthFailure) {
			t.Fatalf("Initialize = %v, want ErrAuthFailure", err)
		}
		events := rec.waitClosed(t)
		if f := waitFor[client.AuthFailure](t, rec, 1); f.Message != client.LegacyAuthFailureMessage {
			t.Errorf("AuthFailure message %q, want %q", f.Message, client.LegacyAuthFailureMessage)
		}
		if n := count[client.Ready](events); n != 0 {
			t.Errorf("Ready with a bad session")
		}
	})

	t.Run("bad session, restart", func(t *testing.T) {
		c, rec := newClient(t, app, client.Options{Auth: &client.LegacySessionAuth{Session: bad, RestartOnAuthFail: true}})
		initialize(t, c)
		waitFor[client.AuthFailure](t, rec, 1)
		scanFirstQR(t, app, rec, "bob") // the restart shows a QR code
		waitFor[client.Ready](t, rec, 1)
		if got := pageAccount(t, c); got != "bob" {
			t.Errorf("the page shows account %q, want bob", got)
		}
	})
}

func waitAuthenticated(t *testing.T, events []client.Event) any {
	t.Helper()
	for _, e := range events {
		if a, ok := e.(client.Authenticated); ok {
			return a.Payload
		}
	}
	t.Fatalf("no Authenticated event: %s", describe(events))
	return nil
}
