package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// LegacySession is the login of a pre-multi-device WhatsApp Web session: the Local Storage keys
// in LegacySessionKeys and their values.
type LegacySession map[string]string

// LegacySessionKeys are the Local Storage keys that hold a pre-multi-device login.
var LegacySessionKeys = []string{"WABrowserId", "WASecretBundle", "WAToken1", "WAToken2"}

// LegacyAuthFailureMessage is the AuthFailure message of LegacySessionAuth (whatsapp-web.js's).
const LegacyAuthFailureMessage = "Unable to log in. Are the session details valid?"

// LegacySessionAuth logs in with a saved token map instead of a profile directory, as
// whatsapp-web.js's LegacySessionAuth did: the Authenticated event carries the tokens (a
// LegacySession) to save, and a later client given them injects them into Local Storage before
// the web app loads.
//
// Deprecated: WhatsApp Web keeps these tokens only for accounts that do not use multi-device,
// which WhatsApp no longer offers; whatsapp-web.js removed this strategy in v1.25. For a
// multi-device account, AuthPayload fails and the client emits AuthFailure. Use RemoteAuth or
// LocalAuth.
type LegacySessionAuth struct {
	BaseAuth
	// Session is the saved login (the payload of an earlier Authenticated event), or nil to log
	// in with a QR code.
	Session LegacySession
	// RestartOnAuthFail makes the client start again without the saved login, showing a QR code,
	// when the web app refuses it. Otherwise Initialize returns an error wrapping ErrAuthFailure.
	RestartOnAuthFail bool
}

// AfterBrowser makes the page write Session into Local Storage before the web app's scripts run,
// once per tab (later documents of the tab, such as the reload after a logout, are left alone).
func (a *LegacySessionAuth) AfterBrowser(ctx context.Context) error {
	if a.Session == nil {
		return nil
	}
	tokens, err := json.Marshal(a.Session)
	if err != nil {
		return fmt.Errorf("client: LegacySessionAuth: %w", err)
	}
	script := fmt.Sprintf(`(() => {
	if (sessionStorage.getItem("wwebstore-legacy-injected")) return;
	sessionStorage.setItem("wwebstore-legacy-injected", "1");
	const session = %s;
	localStorage.clear();
	for (const k of Object.keys(session)) localStorage.setItem(k, session[k]);
	localStorage.setItem("remember-me", "true");
})()`, tokens)
	return a.Host().AddScriptOnNewDocument(ctx, script)
}

// AuthNeeded reports a failure when a saved login was injected and the web app asks for a QR
// code anyway; the login is then forgotten, so a restart shows a QR code.
func (a *LegacySessionAuth) AuthNeeded(context.Context) (AuthNeededResult, error) {
	if a.Session == nil {
		return AuthNeededResult{}, nil
	}
	a.Session = nil
	return AuthNeededResult{Failed: true, Restart: a.RestartOnAuthFail, Message: LegacyAuthFailureMessage}, nil
}

// AuthPayload reads the tokens from Local Storage. It fails when they are missing, as they are
// for a multi-device account.
func (a *LegacySessionAuth) AuthPayload(ctx context.Context) (any, error) {
	keys, err := json.Marshal(LegacySessionKeys)
	if err != nil {
		return nil, err
	}
	var s LegacySession
	expr := fmt.Sprintf(`Object.fromEntries(%s.filter(k => localStorage.getItem(k) !== null).map(k => [k, localStorage.getItem(k)]))`, keys)
	if err := a.Host().Evaluate(ctx, expr, &s); err != nil {
		return nil, err
	}
	if len(s) != len(LegacySessionKeys) {
		return nil, fmt.Errorf("client: LegacySessionAuth: the web app keeps %d of the tokens %v in Local Storage: a multi-device account cannot log in this way; use RemoteAuth or LocalAuth", len(s), LegacySessionKeys)
	}
	return s, nil
}
