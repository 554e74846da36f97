// Package client runs a web app — WhatsApp Web by default — in Chromium and keeps its login: the
// Go counterpart of whatsapp-web.js's Client, limited to authentication and the session's life.
//
// A Client starts Chromium through chromedp with the profile directory its AuthStrategy chooses,
// opens the web app, and reports what happens as typed events on Events: QR, Authenticated,
// AuthFailure, Ready, RemoteSessionSaved, RemoteSessionSaveFailed, Disconnected, LoadingScreen
// and ChangeState. The strategies are NoAuth (the default: a throw-away profile), LocalAuth (a
// profile directory on the local disk), LegacySessionAuth (deprecated: a token map) and
// RemoteAuth, which keeps the profile in a remoteauth.Store (MongoDB, Redis, S3, PostgreSQL, a
// file system), so that a host whose disk is wiped at every restart comes back logged in.
//
// The life of a client:
//
//	c := client.New(client.Options{Auth: &client.RemoteAuth{Store: store, ClientID: "alice"}})
//	go func() {
//		for e := range c.Events() { … } // closed when the client is finished
//	}()
//	err := c.Initialize(ctx) // restores, starts Chromium, opens the app: QR or Ready follows
//	…
//	err = c.Destroy(ctxWithDeadline) // closes Chromium, then RemoteAuth's final backup
//	// or, to end the login for good: err = c.Logout(ctx)
//
// # Differences from whatsapp-web.js
//
// The hook order, the event names and their meaning, the profile and session names
// (session-<clientId>, RemoteAuth-<clientId> under ./.wwebjs_auth) and the archive format are
// whatsapp-web.js's, so sessions move between the two. What differs fixes what its users suffer
// from: RemoteAuth backs up as soon as the client is Ready (not after 60 s), emits
// RemoteSessionSaved after every upload and RemoteSessionSaveFailed when one fails (never
// crashing), takes a final backup on Destroy, and deletes the remote archive only on Logout — not
// on a conflict, a logout from the phone or any other disconnect. A disconnect ends the client:
// create a new one to log in again. Nothing is uploaded for a run that never reached Ready.
//
// # The page
//
// What the client reads from the page and the scripts it runs there are in one table, in
// page.go, with the assumptions they make about WhatsApp Web. The tests run a real Chromium
// against a fixture app that mirrors those selectors (internal/fixture).
package client
