package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wwebstore/wwebstore/client"
	"github.com/wwebstore/wwebstore/client/internal/fixture"
	"github.com/wwebstore/wwebstore/internal/testenv"
)

// eventTimeout bounds each wait for an event: Chromium on a loaded 2-core machine takes seconds
// to start. It is a bound on a hang, not an assertion on speed.
const eventTimeout = 2 * time.Minute

// needBrowser skips (fails in CI) when no Chromium is installed.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := client.FindBrowser(""); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
}

// logger writes the client's logs to the test's output.
func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newClient returns a client of app with auth, and a recorder of its events. The client is
// destroyed when the test ends, if the test did not end it.
func newClient(t *testing.T, app *fixture.App, opts client.Options) (*client.Client, *recorder) {
	t.Helper()
	needBrowser(t)
	opts.URL = app.URL
	if opts.Logger == nil {
		opts.Logger = logger(t)
	}
	c := client.New(opts)
	rec := record(c)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		defer cancel()
		if err := c.Destroy(ctx); err != nil {
			t.Errorf("Destroy at the end of the test: %v", err)
		}
	})
	return c, rec
}

// initialize calls Initialize and fails the test on an error.
func initialize(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
}

// recorder keeps every event of a client.
type recorder struct {
	mu     sync.Mutex
	events []client.Event
	closed bool
	wake   chan struct{} // closed and replaced at each change
}

func record(c *client.Client) *recorder {
	r := &recorder{wake: make(chan struct{})}
	go func() {
		for e := range c.Events() {
			r.mu.Lock()
			r.events = append(r.events, e)
			close(r.wake)
			r.wake = make(chan struct{})
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.closed = true
		close(r.wake)
		r.wake = make(chan struct{})
		r.mu.Unlock()
	}()
	return r
}

// all returns the events so far.
func (r *recorder) all() []client.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Event(nil), r.events...)
}

// waitClosed waits until the channel is closed and returns every event.
func (r *recorder) waitClosed(t *testing.T) []client.Event {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		r.mu.Lock()
		closed, wake := r.closed, r.wake
		r.mu.Unlock()
		if closed {
			return r.all()
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("the Events channel was not closed within %v; events: %s", eventTimeout, describe(r.all()))
		}
	}
}

// waitFor returns the n-th event (from 1) of type E, waiting for it.
func waitFor[E client.Event](t *testing.T, r *recorder, n int) E {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		r.mu.Lock()
		seen := 0
		for _, e := range r.events {
			if e, ok := e.(E); ok {
				if seen++; seen == n {
					r.mu.Unlock()
					return e
				}
			}
		}
		closed, wake := r.closed, r.wake
		r.mu.Unlock()
		var zero E
		if closed {
			t.Fatalf("the Events channel closed without event %d of type %T; events: %s", n, zero, describe(r.all()))
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no event %d of type %T within %v; events: %s", n, zero, eventTimeout, describe(r.all()))
		}
	}
}

// count returns how many events of type E were seen.
func count[E client.Event](events []client.Event) int {
	n := 0
	for _, e := range events {
		if _, ok := e.(E); ok {
			n++
		}
	}
	return n
}

func describe(events []client.Event) string {
	s := ""
	for _, e := range events {
		s += fmt.Sprintf("\n\t%T%+v", e, e)
	}
	return s
}

// scanFirstQR waits for the client's first QR code and scans it as account.
func scanFirstQR(t *testing.T, app *fixture.App, rec *recorder, account string) {
	t.Helper()
	qr := waitFor[client.QR](t, rec, 1)
	if err := app.Scan(t.Context(), qr.Code, account); err != nil {
		t.Fatal(err)
	}
}

// pageAccount reads, from the page, the account whose chat list is shown.
func pageAccount(t *testing.T, c *client.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	acc, err := client.Run(ctx, c, chromedp.Evaluate[string](`document.querySelector("#pane-side").dataset.account`))
	if err != nil {
		t.Fatalf("reading the account from the page: %v", err)
	}
	return acc
}

// pageMessages reads, from the page, the messages shown in the chat list.
func pageMessages(t *testing.T, c *client.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	msgs, err := client.Run(ctx, c, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#pane-side .chat-message")].map(e => e.textContent)`))
	if err != nil {
		t.Fatalf("reading the messages from the page: %v", err)
	}
	return msgs
}

// waitMessage waits until the page shows text.
func waitMessage(t *testing.T, c *client.Client, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	for {
		for _, m := range pageMessages(t, c) {
			if m == text {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the page did not show the message %q within %v", text, eventTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitForWithin reports whether an n-th event of type E comes within d.
func waitForWithin[E client.Event](r *recorder, n int, d time.Duration) bool {
	deadline := time.After(d)
	for {
		r.mu.Lock()
		seen := 0
		for _, e := range r.events {
			if _, ok := e.(E); ok {
				seen++
			}
		}
		closed, wake := r.closed, r.wake
		r.mu.Unlock()
		if seen >= n {
			return true
		}
		if closed {
			return false
		}
		select {
		case <-wake:
		case <-deadline:
			return false
		}
	}
}
