package client_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wwebstore/wwebstore/client"
	"github.com/wwebstore/wwebstore/client/internal/fixture"
)

func TestQRMaxRetriesDisconnects(t *testing.T) {
	app := fixture.Start(t, &fixture.Options{QRRotate: 300 * time.Millisecond})
	c, rec := newClient(t, app, client.Options{QRMaxRetries: 2})
	initialize(t, c)
	events := rec.waitClosed(t)
	if n := count[client.QR](events); n != 3 {
		t.Errorf("%d QR events, want 3 (2 retries, then the one that ends it)", n)
	}
	last, ok := events[len(events)-1].(client.Disconnected)
	if !ok || last.Reason != client.ReasonMaxQRRetries {
		t.Errorf("last event %T%+v, want Disconnected{%q}", events[len(events)-1], events[len(events)-1], client.ReasonMaxQRRetries)
	}
	if _, err := client.Run(t.Context(), c, chromedp.Evaluate[bool]("true")); !errors.Is(err, client.ErrNotRunning) {
		t.Errorf("Run after the disconnect = %v, want ErrNotRunning", err)
	}
}

func TestTakeoverOnConflict(t *testing.T) {
	app := fixture.Start(t, nil)
	c, rec := newClient(t, app, client.Options{TakeoverOnConflict: true})
	initialize(t, c)
	scanFirstQR(t, app, rec, "alice")
	waitFor[client.Ready](t, rec, 1)
	if err := app.Conflict(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	// CONNECTED, CONFLICT, then CONNECTED again once taken over.
	waitState(t, rec, client.StateConflict)
	waitState(t, rec, client.StateConnected, client.StateConflict)
	if n := count[client.Disconnected](rec.all()); n != 0 {
		t.Errorf("the conflict disconnected the client: %s", describe(rec.all()))
	}
	if got := pageAccount(t, c); got != "alice" {
		t.Errorf("after the takeover the page shows account %q, want alice", got)
	}
}

// waitState waits for a ChangeState to want that comes after the states in after, in order.
func waitState(t *testing.T, rec *recorder, want client.State, after ...client.State) {
	t.Helper()
	for n := 1; ; n++ {
		e := waitFor[client.ChangeState](t, rec, n)
		if len(after) > 0 {
			if e.State == after[0] {
				after = after[1:]
			}
			continue
		}
		if e.State == want {
			return
		}
	}
}

func TestAuthTimeout(t *testing.T) {
	needBrowser(t)
	blank := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<!doctype html><title>not WhatsApp</title><p>nothing here</p>"))
	}))
	defer blank.Close()
	c := client.New(client.Options{URL: blank.URL, AuthTimeout: time.Second, Logger: logger(t)})
	rec := record(c)
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	if err := c.Initialize(ctx); !errors.Is(err, client.ErrAuthTimeout) {
		t.Fatalf("Initialize = %v, want ErrAuthTimeout", err)
	}
	rec.waitClosed(t)
}

// An attached browser keeps running after Destroy: the client closes only its tab. A NoAuth
// client works with it; a strategy that needs its own profile refuses it (see
// TestRemoteAuthRefusesAttachedBrowserAndUserDataDir).
func TestAttachedBrowser(t *testing.T) {
	needBrowser(t)
	exe, err := client.FindBrowser("")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--remote-debugging-port=0", "--user-data-dir="+t.TempDir(), "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	wsURL := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if u, ok := strings.CutPrefix(s.Text(), "DevTools listening on "); ok {
				wsURL <- u
			}
		}
	}()
	var browserURL string
	select {
	case browserURL = <-wsURL:
	case <-time.After(eventTimeout):
		t.Fatal("the browser did not print its DevTools address")
	}

	app := fixture.Start(t, nil)
	c, rec := newClient(t, app, client.Options{BrowserURL: browserURL})
	initialize(t, c)
	scanFirstQR(t, app, rec, "alice")
	waitFor[client.Ready](t, rec, 1)
	destroy(t, c)

	// The browser still runs, with its profile: a new client attached to it finds the login.
	c2, rec2 := newClient(t, app, client.Options{BrowserURL: browserURL})
	initialize(t, c2)
	waitFor[client.Ready](t, rec2, 1)
	if n := count[client.QR](rec2.all()); n != 0 {
		t.Errorf("the second client attached to the browser showed %d QR codes, want none", n)
	}
}

// A browser that dies ends the session with Disconnected{BROWSER_CLOSED}; RemoteAuth still takes
// its final backup from the profile on disk, and deletes nothing.
func TestBrowserKilled(t *testing.T) {
	app := fixture.Start(t, nil)
	store := newFileStore(t, t.TempDir())
	auth := &client.RemoteAuth{Store: store, ClientID: "alice", DataPath: t.TempDir()}
	client.SetBackupTicks(auth, time.Hour, time.Hour)
	_, rec := remoteLogin(t, app, auth, "alice")
	dir, err := auth.ProfileDir()
	if err != nil {
		t.Fatal(err)
	}
	killBrowser(t, dir)
	if d := waitFor[client.Disconnected](t, rec, 1); d.Reason != client.ReasonBrowserClosed {
		t.Errorf("Disconnected reason %q, want %q", d.Reason, client.ReasonBrowserClosed)
	}
	rec.waitClosed(t)
	if ok, err := store.SessionExists(t.Context(), "RemoteAuth-alice"); err != nil || !ok {
		t.Errorf("after the crash, SessionExists = %v, %v; want true, nil", ok, err)
	}
}

// killBrowser kills, with SIGKILL, the browser process started with the profile dir.
func killBrowser(t *testing.T, dir string) {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil || len(procs) == 0 {
		t.Skipf("no /proc to find the browser process in: %v", err)
	}
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		main := !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--type=") })
		if main && slices.Contains(args, "--user-data-dir="+dir) {
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no browser process with --user-data-dir=%s", dir)
}
