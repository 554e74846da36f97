package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// AuthStrategy decides where the browser keeps its login and how it is saved and restored. The
// client calls its hooks in whatsapp-web.js's order:
//
//  1. Setup, once, from New.
//  2. BeforeBrowser, before Chromium starts: choose the user-data directory, restore it.
//  3. AfterBrowser, once the page exists and before the web app loads.
//  4. AuthNeeded, if the web app asks for a QR code: a strategy that brought a login says here
//     whether that is a failure.
//  5. AuthPayload, when the app is logged in: the payload of the Authenticated event.
//  6. AfterReady, after the Ready event: start backing up.
//  7. Disconnect, when the session ends without the caller asking (a conflict, a logout from the
//     phone, a state that ends the session); Destroy follows.
//  8. Destroy, after the browser closed: stop, take a final backup.
//  9. Logout, after the browser closed, on Client.Logout: delete what the strategy keeps.
//
// After a failed AuthNeeded with a restart, Destroy is called and the order starts again at
// BeforeBrowser. The hooks of one client are never called concurrently. Embed BaseAuth to write
// only the hooks a strategy needs. A strategy value belongs to one Client.
type AuthStrategy interface {
	Setup(h *Host)
	BeforeBrowser(ctx context.Context, l *Launch) error
	AfterBrowser(ctx context.Context) error
	AuthNeeded(ctx context.Context) (AuthNeededResult, error)
	AuthPayload(ctx context.Context) (any, error)
	AfterReady(ctx context.Context) error
	Disconnect(ctx context.Context, reason string) error
	Destroy(ctx context.Context) error
	Logout(ctx context.Context) error
}

// AuthNeededResult is what AuthNeeded returns: Failed makes the client emit AuthFailure with
// Message and stop; Restart then makes it start again from BeforeBrowser.
type AuthNeededResult struct {
	Failed  bool
	Restart bool
	Message string
}

// Launch is how Chromium is started, given to BeforeBrowser.
type Launch struct {
	// UserDataDir is the profile directory Chromium starts with. It holds Options.UserDataDir
	// when the hook is called ("" when the caller set none: Chromium then gets a throw-away
	// directory, removed when it closes); the strategy may set it.
	UserDataDir string
	// Attached is true when the client attaches to a running browser (Options.BrowserURL),
	// whose profile directory is its own: a strategy that needs its own must refuse, and the
	// client refuses a UserDataDir set for an attached browser.
	Attached bool
}

// Host is what the client lends its strategy: the web app's page, the event stream and the
// logger. Its page methods work between AfterBrowser and the browser's close.
type Host struct {
	c *Client
}

// Evaluate evaluates a JavaScript expression in the web app's page and decodes its value (as
// JSON) into out; out may be nil.
func (h *Host) Evaluate(ctx context.Context, expression string, out any) error {
	raw, err := Run(ctx, h.c, chromedp.Evaluate[[]byte](expression))
	if err != nil {
		return fmt.Errorf("client: evaluate in the page: %w", err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("client: evaluate in the page: decoding %s: %w", raw, err)
	}
	return nil
}

// AddScriptOnNewDocument makes the browser run source in every document the page loads from
// now on, before the document's own scripts.
func (h *Host) AddScriptOnNewDocument(ctx context.Context, source string) error {
	_, err := Run(ctx, h.c, func(ctx context.Context, t *chromedp.Target) (page.AddScriptToEvaluateOnNewDocumentResult, error) {
		return cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: source})
	})
	if err != nil {
		return fmt.Errorf("client: add a script to the page: %w", err)
	}
	return nil
}

// Emit queues an event on the client's Events channel; it never blocks.
func (h *Host) Emit(e Event) { h.c.emit(e) }

// Logger returns the client's logger.
func (h *Host) Logger() *slog.Logger { return h.c.log }

// BaseAuth is an AuthStrategy whose hooks do nothing; embed it to write only the hooks a strategy
// needs. Its Host method returns the Host given to Setup.
type BaseAuth struct {
	host *Host
}

func (b *BaseAuth) Setup(h *Host)                              { b.host = h }
func (b *BaseAuth) Host() *Host                                { return b.host }
func (*BaseAuth) BeforeBrowser(context.Context, *Launch) error { return nil }
func (*BaseAuth) AfterBrowser(context.Context) error           { return nil }
func (*BaseAuth) AuthNeeded(context.Context) (AuthNeededResult, error) {
	return AuthNeededResult{}, nil
}
func (*BaseAuth) AuthPayload(context.Context) (any, error) { return nil, nil }
func (*BaseAuth) AfterReady(context.Context) error         { return nil }
func (*BaseAuth) Disconnect(context.Context, string) error { return nil }
func (*BaseAuth) Destroy(context.Context) error            { return nil }
func (*BaseAuth) Logout(context.Context) error             { return nil }

// NoAuth keeps nothing: every Initialize starts from a throw-away profile and shows a QR code,
// unless Options.UserDataDir names a profile (which NoAuth then neither saves nor deletes). It is
// the default strategy.
type NoAuth struct {
	BaseAuth
}

// DefaultDataPath is the default DataPath of LocalAuth and RemoteAuth, as in whatsapp-web.js.
const DefaultDataPath = remoteauth.DefaultDataPath

// LocalAuth keeps the whole Chromium profile in <DataPath>/session-<ClientID> (or
// <DataPath>/session without a ClientID), as whatsapp-web.js's LocalAuth: the login survives a
// restart on the same disk, and Logout removes the directory.
type LocalAuth struct {
	BaseAuth
	// ClientID tells sessions apart; it must match ^[-_A-Za-z0-9]+$.
	ClientID string
	// DataPath is the directory that holds the profile. Default DefaultDataPath.
	DataPath string

	dir string
}

// Dir returns the profile directory LocalAuth uses: <DataPath>/session-<ClientID>.
func (a *LocalAuth) Dir() (string, error) {
	if a.ClientID != "" {
		if _, err := remoteauth.SessionName(a.ClientID); err != nil {
			return "", fmt.Errorf("client: LocalAuth: %w", err)
		}
	}
	data := a.DataPath
	if data == "" {
		data = DefaultDataPath
	}
	name := "session"
	if a.ClientID != "" {
		name += "-" + a.ClientID
	}
	return filepath.Join(data, name), nil
}

// BeforeBrowser creates the profile directory and gives it to Chromium. It refuses an attached
// browser and a different Options.UserDataDir.
func (a *LocalAuth) BeforeBrowser(_ context.Context, l *Launch) error {
	dir, err := a.Dir()
	if err != nil {
		return err
	}
	if err := refuseProfile("LocalAuth", dir, l); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("client: LocalAuth: create the profile directory: %w", err)
	}
	l.UserDataDir = dir
	a.dir = dir
	return nil
}

// Logout removes the profile directory.
func (a *LocalAuth) Logout(context.Context) error {
	if a.dir == "" {
		return nil
	}
	if err := os.RemoveAll(a.dir); err != nil {
		return fmt.Errorf("client: LocalAuth: remove the profile %s: %w", a.dir, err)
	}
	return nil
}

// refuseProfile returns an error wrapping ErrIncompatibleProfile if the browser is attached or
// the caller chose a profile directory other than dir, which the strategy named needs.
func refuseProfile(strategy, dir string, l *Launch) error {
	if l.Attached {
		return fmt.Errorf("%w: %s keeps the login in its own profile directory %s, but an attached browser (Options.BrowserURL) uses the profile it was started with: start the browser with --user-data-dir=%s and use NoAuth, or leave BrowserURL empty", ErrIncompatibleProfile, strategy, dir, dir)
	}
	if l.UserDataDir != "" && filepath.Clean(l.UserDataDir) != filepath.Clean(dir) {
		return fmt.Errorf("%w: %s is not compatible with a user-supplied UserDataDir (%s): leave Options.UserDataDir empty; the profile is %s", ErrIncompatibleProfile, strategy, l.UserDataDir, dir)
	}
	return nil
}
