package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
)

// Defaults and limits of Options, and the client's fixed times.
const (
	// DefaultURL is the default web app: WhatsApp Web.
	DefaultURL = "https://web.whatsapp.com"
	// DefaultAuthTimeout is the default of Options.AuthTimeout, as whatsapp-web.js's authTimeoutMs.
	DefaultAuthTimeout = 30 * time.Second

	// pollInterval is how often the client reads the page's state.
	pollInterval = 250 * time.Millisecond
	// probeTimeout bounds one reading of the page's state.
	probeTimeout = 10 * time.Second
	// browserCloseTimeout bounds the graceful close of the browser within Destroy and Logout; the
	// process is then killed, so that the final backup keeps the rest of the caller's deadline.
	browserCloseTimeout = 10 * time.Second
	// cleanupTimeout bounds what the client does on its own: the teardown after a disconnect or a
	// failed Initialize, including RemoteAuth's final backup.
	cleanupTimeout = 30 * time.Second
)

// Errors of the client, checked with errors.Is.
var (
	// ErrIncompatibleProfile: the auth strategy needs its own profile directory and the browser
	// cannot have it (an attached browser, or another Options.UserDataDir).
	ErrIncompatibleProfile = errors.New("client: the auth strategy cannot use this browser's profile")
	// ErrAuthTimeout: the web app showed neither a QR code nor the chat list within
	// Options.AuthTimeout.
	ErrAuthTimeout = errors.New("client: authentication timeout")
	// ErrAuthFailure: the auth strategy's saved login was refused (see LegacySessionAuth).
	ErrAuthFailure = errors.New("client: authentication failure")
	// ErrNoBrowser: no Chromium or Chrome executable was found.
	ErrNoBrowser = errors.New("client: no Chromium or Chrome found")
	// ErrNotRunning: the client has no browser: Initialize was not called, failed, or the client
	// is finished.
	ErrNotRunning = errors.New("client: no browser is running")
)

// Options configure a Client. The zero value of every field takes its default.
type Options struct {
	// Auth is the auth strategy: NoAuth (the default), LocalAuth, LegacySessionAuth or
	// RemoteAuth.
	Auth AuthStrategy
	// URL is the web app's address. Default DefaultURL; tests point it at a local fixture.
	URL string

	// ExecPath is the Chromium or Chrome executable. Default: the first of browserNames found on
	// PATH (chromium, chromium-browser, google-chrome, …), then the usual macOS locations.
	ExecPath string
	// Args are extra command-line flags for Chromium, each "--name" or "--name=value" (a proxy,
	// a window size, …). The client runs Chromium headless with chromedp's default flags, and
	// adds --no-sandbox when it runs as root, as Chromium refuses to start as root otherwise.
	Args []string
	// Visible shows the browser window instead of running headless.
	Visible bool
	// UserDataDir is Chromium's profile directory, for NoAuth and LegacySessionAuth. LocalAuth
	// and RemoteAuth choose their own and refuse a different one. Default: a throw-away
	// directory, removed when the browser closes.
	UserDataDir string
	// BrowserURL attaches the client to a running browser instead of starting one: its DevTools
	// address, ws://host:port/devtools/browser/… or http://host:port. The client opens a tab of
	// its own and closes only that tab. LocalAuth and RemoteAuth refuse it (ErrIncompatibleProfile):
	// the browser's profile is the one it was started with.
	BrowserURL string
	// UserAgent overrides the browser's user agent. Default: the browser's own, with
	// "HeadlessChrome" replaced by "Chrome" (WhatsApp Web refuses headless browsers).
	UserAgent string

	// AuthTimeout bounds the wait, in Initialize, for the web app to show a QR code or the chat
	// list once its page has loaded. Default DefaultAuthTimeout (30 s).
	AuthTimeout time.Duration
	// QRMaxRetries ends the session (Disconnected with ReasonMaxQRRetries) when that many QR codes
	// were shown and another comes. Default 0: no limit.
	QRMaxRetries int
	// TakeoverOnConflict takes the session back, TakeoverTimeout after the web app reports that
	// the account was opened in another browser ("Use here"). Without it, a conflict ends the
	// session (Disconnected with StateConflict) and deletes nothing.
	TakeoverOnConflict bool
	// TakeoverTimeout is the wait before taking over. Default 0: at once.
	TakeoverTimeout time.Duration

	// Logger receives the client's logs, QR codes included (at Info). Default slog.Default().
	Logger *slog.Logger
	// EventBuffer is how many events wait for the reader of Events before the oldest droppable one
	// is dropped. Default DefaultEventBuffer (64).
	EventBuffer int
}

// browserNames are the executables looked for on PATH, in order, then browserPaths.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell"}

var browserPaths = []string{
	"/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
	"/Applications/Chromium.app/Contents/MacOS/Chromium",
	`C:\Program Files\Google\Chrome\Application\chrome.exe`,
}

// Client runs the web app in Chromium and keeps its login with an auth strategy: the Go
// counterpart of whatsapp-web.js's Client, limited to authentication and the session's life.
//
// Call Initialize once, read Events, and end with Destroy (keep the login) or Logout (end it).
// Its methods are safe for concurrent use.
type Client struct {
	opts   Options
	auth   AuthStrategy
	log    *slog.Logger
	events *eventQueue

	loggingOut atomic.Bool // Logout is under way: the page's logout is expected
	state      atomic.Value

	mu         sync.Mutex
	phase      phase
	run        *browserRun // the browser of the current Initialize
	initCancel context.CancelFunc
	initDone   chan struct{}
	done       chan struct{} // closed when the client is finished
	loggedOut  bool          // the strategy's Logout ran
}

type phase int

const (
	phaseNew phase = iota
	phaseStarting
	phaseRunning
	phaseClosing
	phaseClosed
)

// New returns a Client with opts. It starts nothing: see Initialize, which also checks opts.
func New(opts Options) *Client {
	if opts.Auth == nil {
		opts.Auth = &NoAuth{}
	}
	if opts.URL == "" {
		opts.URL = DefaultURL
	}
	if opts.AuthTimeout == 0 {
		opts.AuthTimeout = DefaultAuthTimeout
	}
	if opts.EventBuffer == 0 {
		opts.EventBuffer = DefaultEventBuffer
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Client{opts: opts, auth: opts.Auth, log: log, done: make(chan struct{})}
	c.events = newEventQueue(max(opts.EventBuffer, 1), log)
	c.auth.Setup(&Host{c: c})
	return c
}

// Events returns the channel of the client's events, in the order they happened. The client never
// waits for its reader: events wait in a buffer (Options.EventBuffer), and when the reader falls
// behind, QR, LoadingScreen, ChangeState and RemoteSession* events may be dropped, oldest first;
// Authenticated, AuthFailure, Ready and Disconnected never are. The channel is closed once the
// client is finished (Destroy, Logout, a disconnect, a failed Initialize) and its last events are
// read. Events that happen before the first call are kept for it; once called, read the channel
// until it is closed.
func (c *Client) Events() <-chan Event { return c.events.channel() }

// State returns the web app's last connection state ("" before the page showed one).
func (c *Client) State() State {
	s, _ := c.state.Load().(State)
	return s
}

func (c *Client) emit(e Event) {
	switch e := e.(type) {
	case QR:
		c.log.Info("scan this QR code with WhatsApp on the phone (Linked devices)", "code", e.Code)
	case AuthFailure:
		c.log.Error("authentication failed", "message", e.Message)
	case Disconnected:
		c.log.Warn("disconnected", "reason", e.Reason)
	case Ready:
		c.log.Info("ready: the web app is logged in")
	default: // backups are logged by package remoteauth
		c.log.Debug("event", "type", fmt.Sprintf("%T", e), "event", e)
	}
	c.events.push(e)
}

// Initialize starts Chromium with the strategy's profile, opens the web app and returns once the
// page shows a QR code (emitted as a QR event) or the chat list (Ready follows), within ctx and
// Options.AuthTimeout. It is called once per Client. ctx bounds Initialize only, not the browser,
// which runs until Destroy, Logout or a disconnect.
//
// If a saved login is refused (AuthFailure), Initialize starts again without it when the strategy
// says so (LegacySessionAuth.RestartOnAuthFail), and otherwise returns an error wrapping
// ErrAuthFailure. On any error the browser is closed and the client is finished.
func (c *Client) Initialize(ctx context.Context) error {
	c.mu.Lock()
	if c.phase != phaseNew {
		c.mu.Unlock()
		return errors.New("client: Initialize may be called once per Client: create a new Client to start again")
	}
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.phase, c.initCancel, c.initDone = phaseStarting, cancel, make(chan struct{})
	c.mu.Unlock()

	err := c.checkOptions()
	for err == nil {
		var restart bool
		restart, err = c.start(ictx)
		if err == nil {
			c.mu.Lock()
			c.phase = phaseRunning
			close(c.initDone)
			c.mu.Unlock()
			return nil
		}
		c.cleanupStart(ctx)
		if !restart || ictx.Err() != nil {
			break
		}
		c.log.Info("starting again without the refused login")
		err = nil
	}
	c.mu.Lock()
	c.phase = phaseClosed
	close(c.initDone)
	c.mu.Unlock()
	close(c.done)
	c.events.close()
	return err
}

func (c *Client) checkOptions() error {
	o := c.opts
	u, err := url.Parse(o.URL)
	switch {
	case err != nil:
		return fmt.Errorf("client: Options.URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("client: Options.URL %q is not an http or https URL", o.URL)
	case o.AuthTimeout < 0:
		return fmt.Errorf("client: Options.AuthTimeout %v is negative", o.AuthTimeout)
	case o.TakeoverTimeout < 0:
		return fmt.Errorf("client: Options.TakeoverTimeout %v is negative", o.TakeoverTimeout)
	case o.QRMaxRetries < 0:
		return fmt.Errorf("client: Options.QRMaxRetries %d is negative (0 means no limit)", o.QRMaxRetries)
	case o.EventBuffer < 0:
		return fmt.Errorf("client: Options.EventBuffer %d is negative", o.EventBuffer)
	case o.BrowserURL != "" && o.UserDataDir != "":
		return errors.New("client: Options.UserDataDir and Options.BrowserURL are both set: an attached browser keeps the profile it was started with; set one of them")
	}
	if _, err := chromeFlags(o.Args); err != nil {
		return err
	}
	return nil
}

// chromeFlags turns "--name" and "--name=value" into chromedp flags.
func chromeFlags(args []string) ([]chromedp.ExecAllocatorOption, error) {
	var flags []chromedp.ExecAllocatorOption
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok || name == "" || strings.HasPrefix(name, "=") {
			return nil, fmt.Errorf("client: Options.Args: %q is not a flag of the form --name or --name=value", a)
		}
		if n, v, ok := strings.Cut(name, "="); ok {
			flags = append(flags, chromedp.Flag(n, v))
		} else {
			flags = append(flags, chromedp.Flag(name, true))
		}
	}
	return flags, nil
}

// findBrowser returns the executable to start: path if set, else the first browser found.
func findBrowser(path string) (string, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("%w: Options.ExecPath %s: %w", ErrNoBrowser, path, err)
		}
		return p, nil
	}
	for _, name := range append(append([]string{}, browserNames...), browserPaths...) {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	hint := "install Chromium (Debian: apt-get install chromium)"
	if runtime.GOOS != "linux" {
		hint = "install Chrome or Chromium"
	}
	return "", fmt.Errorf("%w on PATH (looked for %s): %s, or set Options.ExecPath", ErrNoBrowser, strings.Join(browserNames, ", "), hint)
}

// browserRun is one browser with the web app's tab, and the state its watcher keeps.
type browserRun struct {
	allocCancel context.CancelFunc
	tab         context.Context
	tabCancel   context.CancelFunc
	stop        chan struct{} // closed to stop the watcher
	watching    chan struct{} // closed when the watcher returned; nil without a watcher

	// Owned by Initialize, then by the watcher.
	state      State
	qr         string
	qrCount    int
	percent    int
	ready      bool
	takeoverAt time.Time // when the conflict is taken over; zero outside a conflict
	takenOver  bool
}

// Run runs a chromedp action in the web app's tab, for as long as ctx allows, and returns its
// value: read or drive the page with chromedp's actions. It returns an error wrapping
// ErrNotRunning when the client has no browser.
func Run[T any](ctx context.Context, c *Client, a chromedp.Action[T]) (T, error) {
	c.mu.Lock()
	r := c.run
	c.mu.Unlock()
	if r == nil {
		var zero T
		return zero, fmt.Errorf("%w: call Initialize first; after Destroy, Logout or a disconnect, create a new Client", ErrNotRunning)
	}
	return runOn(ctx, r, a)
}

func runOn[T any](ctx context.Context, r *browserRun, a chromedp.Action[T]) (T, error) {
	actx, cancel := context.WithCancel(r.tab)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	v, err := chromedp.Run(actx, a)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return v, err
}

// start runs the hooks and the browser up to the page's first settled state, and starts the
// watcher. restart is true when the strategy asks to start again after an AuthFailure.
func (c *Client) start(ctx context.Context) (restart bool, err error) {
	l := Launch{UserDataDir: c.opts.UserDataDir, Attached: c.opts.BrowserURL != ""}
	if err := c.auth.BeforeBrowser(ctx, &l); err != nil {
		return false, err
	}
	if l.Attached && l.UserDataDir != "" {
		return false, fmt.Errorf("%w: the auth strategy chose the profile %s, but an attached browser (Options.BrowserURL) uses its own", ErrIncompatibleProfile, l.UserDataDir)
	}
	r, err := c.launch(ctx, l)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	c.run = r
	c.mu.Unlock()
	if err := c.auth.AfterBrowser(ctx); err != nil {
		return false, err
	}
	if _, err := runOn(ctx, r, chromedp.Navigate(c.opts.URL)); err != nil {
		return false, fmt.Errorf("client: open the web app at %s: %w", c.opts.URL, err)
	}
	st, err := c.waitSettled(ctx, r)
	if err != nil {
		return false, err
	}
	if st.QR != "" && !st.Chats && st.state() != StateConflict {
		res, err := c.auth.AuthNeeded(ctx)
		if err != nil {
			return false, err
		}
		if res.Failed {
			c.emit(AuthFailure{Message: res.Message})
			return res.Restart, fmt.Errorf("%w: %s", ErrAuthFailure, res.Message)
		}
	}
	r.stop, r.watching = make(chan struct{}), make(chan struct{})
	go c.watch(r)
	return false, nil
}

// launch starts (or attaches to) the browser and opens the tab.
func (c *Client) launch(ctx context.Context, l Launch) (*browserRun, error) {
	base := context.WithoutCancel(ctx) // the browser outlives Initialize's ctx
	var (
		allocCtx    context.Context
		allocCancel context.CancelFunc
		what        string
	)
	if l.Attached {
		what = c.opts.BrowserURL
		allocCtx, allocCancel = remote.NewAllocator(base, c.opts.BrowserURL)
	} else {
		exe, err := findBrowser(c.opts.ExecPath)
		if err != nil {
			return nil, err
		}
		what = exe
		flags, err := chromeFlags(c.opts.Args)
		if err != nil {
			return nil, err
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(exe),
			chromedp.Flag("disable-blink-features", "AutomationControlled"),
		)
		if c.opts.Visible {
			opts = append(opts, chromedp.VisibleWindow)
		}
		if l.UserDataDir != "" {
			opts = append(opts, chromedp.UserDataDir(l.UserDataDir))
		}
		allocCtx, allocCancel = chromedp.NewExecAllocator(base, append(opts, flags...)...)
	}
	debugf := func(format string, args ...any) { c.log.Debug("chromedp: " + fmt.Sprintf(format, args...)) }
	tab, tabCancel := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(debugf), chromedp.WithErrorf(debugf), chromedp.WithDebugf(func(string, ...any) {}))
	r := &browserRun{allocCancel: allocCancel, tab: tab, tabCancel: tabCancel, percent: -1}

	// The first run starts the browser and binds its life to the context it is given: tab, not
	// ctx. ctx still bounds the wait.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tab) }()
	select {
	case err := <-started:
		if err != nil {
			r.close(ctx)
			return nil, fmt.Errorf("client: start the browser %s: %w", what, err)
		}
	case <-ctx.Done():
		r.close(ctx)
		<-started
		return nil, fmt.Errorf("client: start the browser %s: %w", what, ctx.Err())
	}
	if err := c.setUserAgent(ctx, r); err != nil {
		r.close(ctx)
		return nil, err
	}
	return r, nil
}

func (c *Client) setUserAgent(ctx context.Context, r *browserRun) error {
	_, err := runOn(ctx, r, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		ua := c.opts.UserAgent
		if ua == "" {
			v, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
			if err != nil {
				return err
			}
			if !strings.Contains(v.UserAgent, "HeadlessChrome") {
				return nil
			}
			ua = strings.ReplaceAll(v.UserAgent, "HeadlessChrome", "Chrome")
		}
		_, err := cdp.Call(ctx, t, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua})
		return err
	}))
	if err != nil {
		return fmt.Errorf("client: set the user agent: %w", err)
	}
	return nil
}

// close closes the browser gracefully (so that it writes its files), within ctx and
// browserCloseTimeout, then kills what is left. An attached browser keeps running; only the tab
// is closed.
func (r *browserRun) close(ctx context.Context) {
	cctx, cancel := context.WithTimeout(r.tab, browserCloseTimeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	_ = chromedp.Cancel(cctx) // errors of a closing browser change nothing: it is gone either way
	r.tabCancel()
	r.allocCancel() // waits for the process to exit and removes a throw-away profile
}

// probe reads the page's state.
func (c *Client) probe(ctx context.Context, r *browserRun) (pageState, error) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	raw, err := runOn(pctx, r, chromedp.Evaluate[[]byte](probeScript))
	if err != nil {
		return pageState{}, err
	}
	return parsePageState(raw)
}

// waitSettled waits for the page to show a QR code, the chat list or a conflict, reporting state
// changes and the loading screen meanwhile.
func (c *Client) waitSettled(ctx context.Context, r *browserRun) (pageState, error) {
	wctx, cancel := context.WithTimeout(ctx, c.opts.AuthTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last pageState
	for {
		st, err := c.probe(wctx, r)
		if err == nil {
			last = st
			c.observeState(r, st)
			c.observeLoading(r, st)
			if st.settled() {
				return st, nil
			}
		} else if r.tab.Err() != nil {
			return st, fmt.Errorf("client: the browser exited while the web app loaded: %w", err)
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return last, fmt.Errorf("client: waiting for the web app: %w", ctx.Err())
			}
			return last, fmt.Errorf("%w: %s showed neither a QR code nor the chat list within %v (Options.AuthTimeout); its state was %q at %s", ErrAuthTimeout, c.opts.URL, c.opts.AuthTimeout, last.state(), last.URL)
		case <-t.C:
		}
	}
}

// cleanupStart closes the browser and runs the strategy's Destroy after a failed start.
func (c *Client) cleanupStart(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	c.mu.Lock()
	r := c.run
	c.run = nil
	c.mu.Unlock()
	if r != nil {
		r.close(cctx)
	}
	if err := c.auth.Destroy(cctx); err != nil {
		c.log.Error("the auth strategy's Destroy failed", "err", err)
	}
}

// ending says how the client ends.
type ending struct {
	reason     string // the reason of the Disconnected event, "" for none
	disconnect bool   // call the strategy's Disconnect first
	logout     bool   // Logout: log the page out, then the strategy's Logout
}

// watch reads the page every pollInterval and turns what changed into events, until stopped or
// the session ends.
func (c *Client) watch(r *browserRun) {
	defer close(r.watching)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	ctx := context.WithoutCancel(r.tab)
	for {
		select {
		case <-r.stop:
			return
		case <-r.tab.Done():
			c.endFromWatcher(ending{reason: ReasonBrowserClosed})
			return
		case <-t.C:
		}
		st, err := c.probe(ctx, r)
		if err != nil {
			if r.tab.Err() != nil {
				c.endFromWatcher(ending{reason: ReasonBrowserClosed})
				return
			}
			c.log.Debug("could not read the page (it may be navigating)", "err", err)
			continue
		}
		if e, end := c.observe(ctx, r, st); end {
			c.endFromWatcher(e)
			return
		}
	}
}

func (c *Client) endFromWatcher(e ending) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := c.finish(ctx, e, true); err != nil {
		c.log.Error("ending the session", "reason", e.reason, "err", err)
	}
}

func (c *Client) observeState(r *browserRun, st pageState) State {
	s := st.state()
	if s != "" && s != r.state {
		r.state = s
		c.state.Store(s)
		c.emit(ChangeState{State: s})
	}
	return s
}

func (c *Client) observeLoading(r *browserRun, st pageState) {
	if st.Percent != r.percent {
		r.percent = st.Percent
		if st.Percent >= 0 {
			c.emit(LoadingScreen{Percent: st.Percent, Message: st.Message})
		}
	}
}

// observe turns one reading of the page into events; end is true when the session ends.
func (c *Client) observe(ctx context.Context, r *browserRun, st pageState) (e ending, end bool) {
	if st.loggedOut() && !c.loggingOut.Load() {
		return ending{reason: ReasonLogout, disconnect: true}, true
	}
	s := c.observeState(r, st)
	switch {
	case s == StateConflict && !c.opts.TakeoverOnConflict:
		return ending{reason: string(s), disconnect: true}, true
	case s == StateConflict:
		if r.takeoverAt.IsZero() {
			r.takeoverAt = time.Now().Add(c.opts.TakeoverTimeout)
		}
		if !r.takenOver && !time.Now().Before(r.takeoverAt) {
			r.takenOver = true
			c.log.Info("the account was opened in another browser; taking the session back")
			if _, err := runOn(ctx, r, chromedp.Evaluate[bool](takeoverScript, chromedp.EvalAwaitPromise)); err != nil {
				c.log.Error("taking the session back failed", "err", err)
			}
		}
	default:
		r.takeoverAt, r.takenOver = time.Time{}, false
		if r.ready && s != "" && !acceptedState(s, c.opts.TakeoverOnConflict) {
			return ending{reason: string(s), disconnect: true}, true
		}
	}
	if !r.ready && st.QR != "" && st.QR != r.qr {
		r.qr = st.QR
		r.qrCount++
		c.emit(QR{Code: st.QR})
		if c.opts.QRMaxRetries > 0 && r.qrCount > c.opts.QRMaxRetries {
			return ending{reason: ReasonMaxQRRetries}, true
		}
	}
	c.observeLoading(r, st)
	if st.Chats && !r.ready && s != StateConflict {
		payload, err := c.auth.AuthPayload(ctx)
		if err != nil {
			c.emit(AuthFailure{Message: err.Error()})
			return ending{}, true
		}
		r.ready = true
		c.emit(Authenticated{Payload: payload})
		c.emit(Ready{})
		if err := c.auth.AfterReady(ctx); err != nil {
			c.log.Error("the auth strategy's AfterReady failed", "err", err)
		}
	}
	return ending{}, false
}

// Destroy closes the browser (gracefully, so that it writes its files to the profile) and then
// runs the strategy's Destroy, within ctx: RemoteAuth takes its final backup there, so give ctx
// the time the platform allows before it kills the process (Heroku: 30 s after SIGTERM). The
// login is kept. Destroy during Initialize stops it. The client is finished afterwards; calling
// Destroy again returns nil.
func (c *Client) Destroy(ctx context.Context) error { return c.finish(ctx, ending{}, false) }

// Logout logs the web app out (the phone no longer lists the device), closes the browser and runs
// the strategy's Logout, which deletes what it keeps: LocalAuth's profile, RemoteAuth's remote
// archive and local profile. It emits Disconnected with ReasonLogout. Logout after the client was
// finished (by Destroy or a disconnect) still runs the strategy's Logout, to delete what was
// kept.
func (c *Client) Logout(ctx context.Context) error {
	return c.finish(ctx, ending{logout: true}, false)
}

// finish ends the client as e says; fromWatcher is true when the watcher itself ends it.
func (c *Client) finish(ctx context.Context, e ending, fromWatcher bool) error {
	c.mu.Lock()
	for c.phase != phaseRunning {
		switch c.phase {
		case phaseNew:
			c.phase = phaseClosed
			close(c.done)
			c.events.close()
		case phaseStarting:
			c.initCancel()
			initDone := c.initDone
			c.mu.Unlock()
			select {
			case <-initDone:
			case <-ctx.Done():
				return fmt.Errorf("client: waiting for Initialize to stop: %w", ctx.Err())
			}
			c.mu.Lock()
			continue
		case phaseClosing:
			done := c.done
			c.mu.Unlock()
			if fromWatcher {
				return nil // the one ending the client waits for the watcher
			}
			select {
			case <-done:
			case <-ctx.Done():
				return fmt.Errorf("client: waiting for the client to end: %w", ctx.Err())
			}
			c.mu.Lock()
			continue
		}
		// phaseClosed
		c.mu.Unlock()
		if e.logout {
			return c.logoutAfterEnd(ctx)
		}
		return nil
	}
	c.phase = phaseClosing
	r := c.run
	c.mu.Unlock()

	var errs []error
	if e.logout {
		c.loggingOut.Store(true)
		if _, err := runOn(ctx, r, chromedp.Evaluate[bool](logoutScript, chromedp.EvalAwaitPromise)); err != nil && !isNavigation(err) {
			errs = append(errs, fmt.Errorf("client: log the web app out (the phone may still list this device): %w", err))
		}
	}
	if e.disconnect {
		if err := c.auth.Disconnect(ctx, e.reason); err != nil {
			errs = append(errs, err)
		}
	}
	if e.reason != "" {
		c.emit(Disconnected{Reason: e.reason})
	}
	if !fromWatcher {
		close(r.stop)
		<-r.watching
	}
	r.close(ctx)
	c.mu.Lock()
	c.run = nil
	c.mu.Unlock()
	if e.logout {
		if err := c.auth.Logout(ctx); err != nil {
			errs = append(errs, err)
		}
		c.mu.Lock()
		c.loggedOut = true
		c.mu.Unlock()
		c.emit(Disconnected{Reason: ReasonLogout})
	} else if err := c.auth.Destroy(ctx); err != nil {
		errs = append(errs, err)
	}
	c.mu.Lock()
	c.phase = phaseClosed
	c.mu.Unlock()
	close(c.done)
	c.events.close()
	return errors.Join(errs...)
}

// logoutAfterEnd runs the strategy's Logout once, for a client that has already ended.
func (c *Client) logoutAfterEnd(ctx context.Context) error {
	c.mu.Lock()
	if c.loggedOut {
		c.mu.Unlock()
		return nil
	}
	c.loggedOut = true
	c.mu.Unlock()
	return c.auth.Logout(ctx)
}

// isNavigation reports whether err is the page navigating away during an evaluation, which a
// logout does.
func isNavigation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Execution context was destroyed") || strings.Contains(msg, "Inspected target navigated") || strings.Contains(msg, "Cannot find context")
}
