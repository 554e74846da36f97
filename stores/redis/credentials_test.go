package redisstore_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// TestWrongCredentials checks that a URL with credentials the server refuses fails at OpenStore
// (New sends PING), with an error that names the store and says why, and never shows the
// password.
func TestWrongCredentials(t *testing.T) {
	srv := testservers.Redis(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("wwebstore-nobody", "wrong-password-1234")
	st, err := remoteauth.OpenStore(t.Context(), u.String())
	if err == nil {
		t.Fatalf("OpenStore with wrong credentials = %T; want an error", st)
	}
	msg := err.Error()
	if !strings.Contains(msg, "redisstore: New: PING") || !strings.Contains(msg, "WRONGPASS") {
		t.Errorf("the error %q does not say that the server refused the credentials", msg)
	}
	if strings.Contains(msg, "wrong-password-1234") {
		t.Errorf("the error %q shows the password", msg)
	}
}
