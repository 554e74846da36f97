package client

import (
	"encoding/json"
	"fmt"
	"strings"
)

// State is the web app's connection state, as WhatsApp Web names it (whatsapp-web.js's WAState).
type State string

// The connection states the client acts on. WhatsApp Web has a few more (PROXYBLOCK, TOS_BLOCK,
// SMB_TOS_BLOCK, DEPRECATED_VERSION); they are reported by ChangeState like these, and after Ready
// they end the session like StateUnpaired.
const (
	StateUnlaunched   State = "UNLAUNCHED"
	StateOpening      State = "OPENING"  // loading
	StatePairing      State = "PAIRING"  // a QR code was scanned; the login is being set up
	StateUnpaired     State = "UNPAIRED" // showing a QR code
	StateUnpairedIdle State = "UNPAIRED_IDLE"
	StateConnected    State = "CONNECTED" // logged in
	StateConflict     State = "CONFLICT"  // the account was opened in another browser
	StateTimeout      State = "TIMEOUT"   // the phone or the server did not answer for a while
)

// acceptedState reports whether state keeps a logged-in session going (whatsapp-web.js's
// ACCEPTED_STATES); StateConflict too when the client takes the session back.
func acceptedState(s State, takeover bool) bool {
	switch s {
	case StateConnected, StateOpening, StatePairing, StateTimeout:
		return true
	case StateConflict:
		return takeover
	}
	return false
}

// The web app's page, as the client reads and drives it. This is the only place that knows the
// page: when WhatsApp Web changes, the fix is here. The test fixture (internal/fixture) builds a
// page with exactly these elements, so the tests exercise these selectors and scripts.
//
// They describe WhatsApp Web as whatsapp-web.js and other automation tools have known it. These
// are assumptions about a page that is not documented and changes without notice:
//   - The QR code is drawn inside an element with a data-ref attribute whose value is the text the
//     QR code encodes (whatsapp-web.js up to 1.22 read the code there).
//   - The chat list is the side pane #pane-side, present only when logged in.
//   - The loading screen ("Loading your chats") has a <progress> element in #app whose value is
//     the percentage; the message is in the element after the progress bar's container
//     (whatsapp-web.js up to 1.22 read both by XPath).
//   - WhatsApp Web's own module system, window.require, has the module WAWebSocketModel whose
//     Socket holds the connection state (Socket.state) and the commands Socket.logout() and
//     Socket.takeover() (whatsapp-web.js 1.34.7 uses these).
//   - After a logout the app reloads itself with post_logout=1 in its URL (whatsapp-web.js 1.34.7
//     watches for it).
//
// Where the module system is missing, the state is derived from the page: chat list →
// CONNECTED, QR code → UNPAIRED, progress bar → OPENING; a conflict is then not seen.
const (
	selQR           = "div[data-ref]"
	attrQR          = "data-ref"
	selChatList     = "#pane-side"
	selProgress     = "#app progress"
	socketModule    = "WAWebSocketModel"
	postLogoutParam = "post_logout=1"
)

// probeScript returns, as JSON, what the client reads from the page (pageState).
var probeScript = fmt.Sprintf(`(() => {
	let socket = "";
	try {
		const m = typeof window.require === "function" ? window.require(%[5]q) : null;
		socket = (m && m.Socket && m.Socket.state) || "";
	} catch (e) {}
	const qr = document.querySelector(%[1]q);
	const p = document.querySelector(%[4]q);
	const after = p && p.parentElement && p.parentElement.nextElementSibling;
	return {
		url: location.href,
		socket: String(socket),
		qr: (qr && qr.getAttribute(%[2]q)) || "",
		chats: document.querySelector(%[3]q) !== null,
		percent: p ? Math.round(Number(p.value) || 0) : -1,
		message: after ? after.innerText : "",
	};
})()`, selQR, attrQR, selChatList, selProgress, socketModule)

// logoutScript logs the web app out, as Socket.logout() of WhatsApp Web does, and resolves once
// the app has told its server.
var logoutScript = fmt.Sprintf(`Promise.resolve(window.require(%q).Socket.logout()).then(() => true)`, socketModule)

// takeoverScript takes the session back from another browser ("Use here").
var takeoverScript = fmt.Sprintf(`Promise.resolve(window.require(%q).Socket.takeover()).then(() => true)`, socketModule)

// pageState is what probeScript returns.
type pageState struct {
	URL     string `json:"url"`
	Socket  string `json:"socket"`
	QR      string `json:"qr"`
	Chats   bool   `json:"chats"`
	Percent int    `json:"percent"` // -1: no loading screen
	Message string `json:"message"`
}

func parsePageState(raw []byte) (pageState, error) {
	var s pageState
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("reading the page's state: %w", err)
	}
	return s, nil
}

// state is the connection state: the app's own when it has one, else derived from the page.
func (s pageState) state() State {
	switch {
	case s.Socket != "":
		return State(s.Socket)
	case s.Chats:
		return StateConnected
	case s.QR != "":
		return StateUnpaired
	case s.Percent >= 0:
		return StateOpening
	}
	return ""
}

// loggedOut reports whether the app reloaded itself after a logout.
func (s pageState) loggedOut() bool { return strings.Contains(s.URL, postLogoutParam) }

// settled reports whether the page shows what Initialize waits for: a QR code, the chat list or
// a conflict.
func (s pageState) settled() bool {
	return s.Chats || s.QR != "" || s.state() == StateConflict
}
