package postgresstore_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// TestWrongCredentials checks that a URL with a role the server does not know fails at OpenStore
// (New creates or checks the tables, which needs a connection), with an error that names the
// store and says why (an error of SQLSTATE class 28, invalid authorization: 28P01 for a wrong
// password, 28000 for an unknown role on a server that trusts local connections), and never shows
// the password.
func TestWrongCredentials(t *testing.T) {
	srv := testservers.Postgres(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("wwebstore_nobody", "wrong-password-1234")
	st, err := remoteauth.OpenStore(t.Context(), u.String())
	if err == nil {
		t.Fatalf("OpenStore with wrong credentials = %T; want an error", st)
	}
	msg := err.Error()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "28") || !strings.Contains(msg, "postgresstore: ") || !strings.Contains(msg, `"wwebstore_nobody"`) {
		t.Errorf("the error %q does not say that the server refused the credentials (SQLSTATE class 28)", msg)
	}
	if strings.Contains(msg, "wrong-password-1234") {
		t.Errorf("the error %q shows the password", msg)
	}
}
