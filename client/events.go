package client

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Event is one of the events a Client delivers on its Events channel: QR, Authenticated,
// AuthFailure, Ready, RemoteSessionSaved, RemoteSessionSaveFailed, Disconnected, LoadingScreen
// or ChangeState. Switch on the type to read it.
type Event interface {
	event()
	// lasting reports whether the event must never be dropped when the reader falls behind.
	lasting() bool
}

// QR is emitted each time the web app shows a new QR code: scan its Code with the phone (it is
// the text the QR code encodes). WhatsApp Web rotates the code about every 20 seconds; see
// Options.QRMaxRetries.
type QR struct {
	Code string
}

// Authenticated is emitted when the web app is logged in, just before Ready. Payload is what the
// auth strategy returns from AuthPayload: a LegacySession for LegacySessionAuth, nil for the
// other strategies.
type Authenticated struct {
	Payload any
}

// AuthFailure is emitted when a saved login is refused (LegacySessionAuth: the web app asked for
// a QR code anyway) or the strategy cannot read the login. Message says why.
type AuthFailure struct {
	Message string
}

// Ready is emitted once per Initialize, when the web app shows the chat list.
type Ready struct{}

// RemoteSessionSaved is emitted after every backup that RemoteAuth uploaded: the first one as soon
// as the client is Ready, the periodic ones and the final one of Destroy. A backup of an unchanged
// profile uploads nothing and emits nothing.
type RemoteSessionSaved struct {
	Session     string        // the session's name in the store, "RemoteAuth-<clientId>"
	ArchiveSize int64         // bytes sent to the store
	Files       int           // files archived
	Bytes       int64         // their size before compression
	Duration    time.Duration // from the snapshot's start to the store's acknowledgement
	Attempts    int           // uploads started; more than one when the store failed or the profile changed
}

// RemoteSessionSaveFailed is emitted when a RemoteAuth backup failed after its retries. Nothing
// was deleted: the store keeps the previous archive, and the next periodic backup tries again.
type RemoteSessionSaveFailed struct {
	Session  string
	Err      error
	Attempts int
}

// Disconnected is emitted when the session ends without Destroy: Reason is ReasonLogout (logged
// out from the phone or by Logout), ReasonMaxQRRetries, ReasonBrowserClosed, or the connection
// state that ended it (StateConflict, StateUnpaired, …). The client is then finished.
type Disconnected struct {
	Reason string
}

// LoadingScreen is emitted while the web app loads the chats, each time the percentage changes.
type LoadingScreen struct {
	Percent int
	Message string
}

// ChangeState is emitted each time the web app's connection state changes.
type ChangeState struct {
	State State
}

// Reasons of Disconnected besides the connection states.
const (
	// ReasonLogout: the session was logged out, from the phone or by Client.Logout.
	ReasonLogout = "LOGOUT"
	// ReasonMaxQRRetries: Options.QRMaxRetries QR codes were shown and none was scanned (the text
	// is whatsapp-web.js's).
	ReasonMaxQRRetries = "Max qrcode retries reached"
	// ReasonBrowserClosed: the browser exited or the connection to it was lost.
	ReasonBrowserClosed = "BROWSER_CLOSED"
)

func (QR) event()                      {}
func (Authenticated) event()           {}
func (AuthFailure) event()             {}
func (Ready) event()                   {}
func (RemoteSessionSaved) event()      {}
func (RemoteSessionSaveFailed) event() {}
func (Disconnected) event()            {}
func (LoadingScreen) event()           {}
func (ChangeState) event()             {}

func (QR) lasting() bool                      { return false }
func (Authenticated) lasting() bool           { return true }
func (AuthFailure) lasting() bool             { return true }
func (Ready) lasting() bool                   { return true }
func (RemoteSessionSaved) lasting() bool      { return false }
func (RemoteSessionSaveFailed) lasting() bool { return false }
func (Disconnected) lasting() bool            { return true }
func (LoadingScreen) lasting() bool           { return false }
func (ChangeState) lasting() bool             { return false }

// DefaultEventBuffer is the default of Options.EventBuffer.
const DefaultEventBuffer = 64

// eventQueue delivers events in order without ever blocking the client: it holds them until the
// reader takes them. When more than max wait, the oldest event that may be dropped (QR,
// LoadingScreen, ChangeState, RemoteSessionSaved, RemoteSessionSaveFailed) is dropped; the
// lasting ones (Authenticated, AuthFailure, Ready, Disconnected) are always kept, and there are
// only a few of them per Initialize.
type eventQueue struct {
	log     *slog.Logger
	mu      sync.Mutex
	buf     []Event
	max     int
	closed  bool
	started bool
	wake    chan struct{} // capacity 1: a push or close happened
	out     chan Event
}

func newEventQueue(max int, log *slog.Logger) *eventQueue {
	return &eventQueue{log: log, max: max, wake: make(chan struct{}, 1), out: make(chan Event)}
}

// push queues e. It never blocks; after close it does nothing.
func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if len(q.buf) >= q.max {
		for i, old := range q.buf {
			if !old.lasting() {
				q.buf = append(q.buf[:i], q.buf[i+1:]...)
				q.log.Warn("the Events channel is not read: dropped an event", "event", fmt.Sprintf("%T", old), "buffer", q.max)
				break
			}
		}
	}
	q.buf = append(q.buf, e)
	q.signal()
}

// close makes the channel close once the queued events are delivered.
func (q *eventQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.signal()
}

func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// channel returns the channel the events come out of, starting its delivery on the first call.
func (q *eventQueue) channel() <-chan Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.started {
		q.started = true
		go q.deliver()
	}
	return q.out
}

func (q *eventQueue) deliver() {
	for {
		q.mu.Lock()
		if len(q.buf) > 0 {
			e := q.buf[0]
			q.buf[0] = nil
			q.buf = q.buf[1:]
			q.mu.Unlock()
			q.out <- e
			continue
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			close(q.out)
			return
		}
		<-q.wake
	}
}
