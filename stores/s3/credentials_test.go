package s3store_test

import (
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

// TestAccessCheck: OpenStore (New's access check) fails with wrong credentials or a missing
// bucket, with an error that wraps ErrAccessCheck and the server's refusal (its S3 code), names
// the bucket and the endpoint, says what to fix, and never shows the secret; with check=false
// it makes no request and succeeds, and the first call fails instead.
func TestAccessCheck(t *testing.T) {
	const secret = "wrong-secret-key-1234"
	srv := testservers.S3(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := u.Query().Get("endpoint")
	missing := *u
	missing.Host = "wwebstore-test-no-such-bucket"
	for _, tt := range []struct {
		name   string
		env    map[string]string
		url    string
		code   string   // S3's error code
		advice []string // what the message must say
	}{
		{"WrongSecret", map[string]string{"AWS_SECRET_ACCESS_KEY": secret}, srv.URL,
			"SignatureDoesNotMatch", []string{"refused the credentials", "AWS_SECRET_ACCESS_KEY", "EnvConfigCredentials"}},
		{"WrongAccessKeyID", map[string]string{"AWS_ACCESS_KEY_ID": "AKIAWRONGKEYID000000"}, srv.URL,
			"InvalidAccessKeyId", []string{"refused the credentials", "AWS_ACCESS_KEY_ID"}},
		{"MissingBucket", nil, missing.String(),
			"NoSuchBucket", []string{"bucket does not exist", missing.Host}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv.Setenv(t)
			t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			st, err := remoteauth.OpenStore(t.Context(), tt.url)
			if err == nil {
				t.Fatalf("OpenStore(%s) succeeded (%T); want the access check's error", tt.url, st)
			}
			t.Logf("the error: %v", err)
			if !errors.Is(err, s3store.ErrAccessCheck) {
				t.Errorf("the error does not wrap ErrAccessCheck")
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tt.code {
				t.Errorf("the error does not wrap the server's %s", tt.code)
			}
			msg := err.Error()
			for _, want := range append(tt.advice, "s3store", endpoint, "ListObjectsV2") {
				if !strings.Contains(msg, want) {
					t.Errorf("the error does not say %q", want)
				}
			}
			if key := os.Getenv("AWS_SECRET_ACCESS_KEY"); strings.Contains(msg, key) {
				t.Errorf("the error shows the secret key %q", key)
			}
		})
	}
	t.Run("CheckFalse", func(t *testing.T) {
		srv.Setenv(t)
		t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
		t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
		st, err := remoteauth.OpenStore(t.Context(), srv.URL+"&check=false")
		if err != nil {
			t.Fatalf("OpenStore with check=false and a wrong secret: %v; want no request, so no error", err)
		}
		_, err = st.SessionExists(t.Context(), "RemoteAuth-creds")
		var api smithy.APIError
		if err == nil || !errors.As(err, &api) {
			t.Fatalf("SessionExists with a wrong secret = %v; want the server's refusal", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "RemoteAuth-creds") || strings.Contains(msg, secret) {
			t.Errorf("the error %q does not name the session, or shows the secret", msg)
		}
	})
}

// TestAccessCheckUnreachable: New against an endpoint where nothing listens fails, saying that
// the endpoint cannot be reached and naming it; with SkipAccessCheck it succeeds.
func TestAccessCheckUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close()
	c := s3.New(s3.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider("AKIAEXAMPLE", "secret-never-shown", ""),
		RetryMaxAttempts: 1,
	})
	_, err = s3store.New(t.Context(), c, "b", &s3store.Options{Prefix: "sessions"})
	if err == nil {
		t.Fatalf("New against %s (nothing listens) succeeded", endpoint)
	}
	t.Logf("the error: %v", err)
	if msg := err.Error(); !errors.Is(err, s3store.ErrAccessCheck) || !strings.Contains(msg, endpoint) ||
		!strings.Contains(msg, "cannot be reached") || !strings.Contains(msg, `"b"`) || strings.Contains(msg, "secret-never-shown") {
		t.Errorf("the error does not wrap ErrAccessCheck, name the endpoint and the bucket and say it cannot be reached, or shows the secret")
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("the error does not wrap the network error")
	}
	if _, err := s3store.New(t.Context(), c, "b", &s3store.Options{SkipAccessCheck: true}); err != nil {
		t.Errorf("New with SkipAccessCheck: %v", err)
	}
}
