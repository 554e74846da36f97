package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
)

var discard = slog.New(slog.DiscardHandler)

func drain(q *eventQueue) []Event {
	q.close()
	var got []Event
	for e := range q.channel() {
		got = append(got, e)
	}
	return got
}

func TestEventQueueDropsOnlyDroppableEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		push []Event
		want []Event
	}{
		{
			name: "under the limit, all in order",
			max:  8,
			push: []Event{QR{"a"}, ChangeState{StateConnected}, Authenticated{}, Ready{}},
			want: []Event{QR{"a"}, ChangeState{StateConnected}, Authenticated{}, Ready{}},
		},
		{
			name: "over the limit, the oldest droppable goes",
			max:  3,
			push: []Event{QR{"a"}, QR{"b"}, Ready{}, QR{"c"}, Disconnected{"x"}},
			want: []Event{Ready{}, QR{"c"}, Disconnected{"x"}},
		},
		{
			name: "lasting events are kept beyond the limit",
			max:  2,
			push: []Event{Authenticated{}, Ready{}, AuthFailure{"m"}, LoadingScreen{50, "l"}, Disconnected{"x"}},
			want: []Event{Authenticated{}, Ready{}, AuthFailure{"m"}, Disconnected{"x"}},
		},
		{
			name: "backup events may be dropped",
			max:  1,
			push: []Event{RemoteSessionSaved{Session: "s"}, RemoteSessionSaveFailed{Session: "s"}, Ready{}},
			want: []Event{Ready{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newEventQueue(tc.max, discard)
			for _, e := range tc.push {
				q.push(e)
			}
			if got := drain(q); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("delivered %v, want %v", got, tc.want)
			}
		})
	}
}

// push never waits for a reader, and the channel closes after the last event.
func TestEventQueueNeverBlocks(t *testing.T) {
	q := newEventQueue(4, discard)
	ch := q.channel() // a reader that does not read yet
	for i := range 10_000 {
		q.push(QR{Code: fmt.Sprint(i)})
	}
	q.push(Ready{})
	q.close()
	q.push(QR{"after close"}) // ignored
	var got []Event
	for e := range ch {
		got = append(got, e)
	}
	if len(got) == 0 || len(got) > 5 || got[len(got)-1] != (Ready{}) {
		t.Errorf("delivered %v, want at most 4 QR codes and then Ready", got)
	}
}

func TestChromeFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"--proxy-server=http://127.0.0.1:3128", "--mute-audio"}, true},
		{[]string{"proxy-server=x"}, false},
		{[]string{"--"}, false},
		{[]string{"--=x"}, false},
		{[]string{"-v"}, false},
	} {
		_, err := chromeFlags(tc.args)
		if (err == nil) != tc.ok {
			t.Errorf("chromeFlags(%q) error %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

func TestCheckOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string // a part of the error, "" for none
	}{
		{"defaults", Options{}, ""},
		{"not http", Options{URL: "file:///tmp/x.html"}, "not an http or https URL"},
		{"negative auth timeout", Options{AuthTimeout: -1}, "AuthTimeout"},
		{"negative takeover timeout", Options{TakeoverTimeout: -1}, "TakeoverTimeout"},
		{"negative QR retries", Options{QRMaxRetries: -1}, "QRMaxRetries"},
		{"negative event buffer", Options{EventBuffer: -1}, "EventBuffer"},
		{"attached with a profile", Options{BrowserURL: "ws://x", UserDataDir: "/tmp/p"}, "both set"},
		{"bad flag", Options{Args: []string{"x"}}, "not a flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(tc.opts)
			err := c.checkOptions()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("checkOptions() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestPageStateState(t *testing.T) {
	for _, tc := range []struct {
		st      pageState
		want    State
		settled bool
	}{
		{pageState{Percent: -1}, "", false},
		{pageState{Socket: "OPENING", Percent: 40}, StateOpening, false},
		{pageState{Percent: 40}, StateOpening, false},
		{pageState{QR: "2@x", Percent: -1}, StateUnpaired, true},
		{pageState{Chats: true, Percent: -1}, StateConnected, true},
		{pageState{Socket: "CONFLICT", Percent: -1}, StateConflict, true},
		{pageState{Socket: "UNPAIRED", QR: "2@x", Percent: -1}, StateUnpaired, true},
	} {
		if got := tc.st.state(); got != tc.want {
			t.Errorf("%+v.state() = %q, want %q", tc.st, got, tc.want)
		}
		if got := tc.st.settled(); got != tc.settled {
			t.Errorf("%+v.settled() = %v, want %v", tc.st, got, tc.settled)
		}
	}
	if !(pageState{URL: "https://web.whatsapp.com/?post_logout=1"}).loggedOut() {
		t.Error("post_logout=1 not seen as a logout")
	}
}

func TestFindBrowserExecPath(t *testing.T) {
	_, err := findBrowser(filepath.Join(t.TempDir(), "no-such-browser"))
	if !errors.Is(err, ErrNoBrowser) {
		t.Errorf("findBrowser(missing) = %v, want ErrNoBrowser", err)
	}
}

func TestStrategyDirs(t *testing.T) {
	l := &LocalAuth{ClientID: "alice", DataPath: "/data"}
	if dir, err := l.Dir(); err != nil || dir != filepath.Join("/data", "session-alice") {
		t.Errorf("LocalAuth.Dir() = %q, %v", dir, err)
	}
	if dir, _ := (&LocalAuth{}).Dir(); dir != filepath.Join(DefaultDataPath, "session") {
		t.Errorf("LocalAuth{}.Dir() = %q", dir)
	}
	r := &RemoteAuth{ClientID: "alice", DataPath: "/data"}
	if dir, err := r.ProfileDir(); err != nil || dir != filepath.Join("/data", "RemoteAuth-alice") {
		t.Errorf("RemoteAuth.ProfileDir() = %q, %v", dir, err)
	}
	for _, bad := range []string{"a/b", "a b", ".."} {
		if _, err := (&LocalAuth{ClientID: bad}).Dir(); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("LocalAuth{ClientID: %q}.Dir() error %v, want ErrInvalidSession", bad, err)
		}
		if _, err := (&RemoteAuth{ClientID: bad}).ProfileDir(); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("RemoteAuth{ClientID: %q}.ProfileDir() error %v, want ErrInvalidSession", bad, err)
		}
	}
}

func TestRemoteAuthNeedsAValidSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		auth *RemoteAuth
		want string
	}{
		{"no store", &RemoteAuth{ClientID: "a"}, "needs a store"},
		{"unknown store URL", &RemoteAuth{StoreURL: "nosuch://x"}, "no store registered"},
		{"short interval", &RemoteAuth{Store: nopStore{}, BackupInterval: remoteauth.MinBackupInterval / 2}, "BackupInterval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Options{Auth: tc.auth, Logger: discard})
			err := c.Initialize(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Initialize = %v, want an error with %q", err, tc.want)
			}
			if _, open := <-c.Events(); open {
				t.Error("the Events channel is open after a failed Initialize")
			}
		})
	}
}

// nopStore is never called: NewSession refuses the options first.
type nopStore struct{ remoteauth.Store }

func TestLifecycleWithoutABrowser(t *testing.T) {
	c := New(Options{Logger: discard})
	if err := c.Destroy(t.Context()); err != nil {
		t.Fatalf("Destroy before Initialize = %v", err)
	}
	if err := c.Destroy(t.Context()); err != nil {
		t.Errorf("second Destroy = %v, want nil", err)
	}
	if _, open := <-c.Events(); open {
		t.Error("the Events channel is open after Destroy")
	}
	if err := c.Initialize(context.Background()); err == nil {
		t.Error("Initialize after Destroy succeeded")
	}
	if _, err := Run[bool](t.Context(), c, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Run = %v, want ErrNotRunning", err)
	}
}
