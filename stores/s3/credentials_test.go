package s3store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// TestWrongCredentials checks what a wrong secret key does. s3store.New sends no request, so
// OpenStore succeeds; the first call fails, with an error that names the store and the session
// and wraps the server's refusal (an smithy.APIError: "Forbidden" for HeadObject, whose answer
// has no body, SignatureDoesNotMatch otherwise), and never shows the secret.
func TestWrongCredentials(t *testing.T) {
	srv := testservers.S3(t)
	srv.Setenv(t)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-key-1234")
	st, err := remoteauth.OpenStore(t.Context(), srv.URL)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	_, err = st.SessionExists(t.Context(), "RemoteAuth-creds")
	if err == nil {
		t.Fatal("SessionExists with a wrong secret key succeeded")
	}
	var api smithy.APIError
	if !errors.As(err, &api) || (api.ErrorCode() != "Forbidden" && api.ErrorCode() != "SignatureDoesNotMatch") {
		t.Errorf("SessionExists = %v; want the server's refusal", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "s3store") || !strings.Contains(msg, "RemoteAuth-creds") || strings.Contains(msg, "wrong-secret-key-1234") {
		t.Errorf("the error %q does not name the store and the session, or shows the secret", msg)
	}
}
