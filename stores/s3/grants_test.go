package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/internal/testenv"
	"github.com/wwebstore/wwebstore/remoteauth"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
	"github.com/wwebstore/wwebstore/storetest"
)

// grantPolicy returns the README's IAM policy (section Permissions) for a store whose keys are
// under prefix (not empty) in bucket, without the actions in drop.
func grantPolicy(bucket, prefix string, drop ...string) string {
	var objectActions []string
	for _, a := range []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"} {
		if !slices.Contains(drop, a) {
			objectActions = append(objectActions, a)
		}
	}
	statements := []map[string]any{{
		"Sid":      "Archives",
		"Effect":   "Allow",
		"Action":   objectActions,
		"Resource": "arn:aws:s3:::" + bucket + "/" + prefix + "/*",
	}}
	if !slices.Contains(drop, "s3:ListBucket") {
		statements = append(statements, map[string]any{
			"Sid":       "ListSessionsAndHistory",
			"Effect":    "Allow",
			"Action":    "s3:ListBucket",
			"Resource":  "arn:aws:s3:::" + bucket,
			"Condition": map[string]any{"StringLike": map[string]any{"s3:prefix": prefix + "/*"}},
		})
	}
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// assumeRole asks the server's STS for temporary credentials of the test server's keys limited
// by the session policy p (AssumeRole with an inline Policy: the credentials may do what both the
// keys and p allow; the root keys of the tests' MinIO allow everything, so exactly p). It sends
// the request with the SDK's SigV4 signer. A server without STS (versitygw) makes the test
// unavailable.
func assumeRole(t *testing.T, s *server, p string) aws.Credentials {
	t.Helper()
	form := url.Values{
		"Action":          {"AssumeRole"},
		"Version":         {"2011-06-15"},
		"DurationSeconds": {"3600"},
		"Policy":          {p},
	}
	body := form.Encode()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.Endpoint+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sum := sha256.Sum256([]byte(body))
	admin := aws.Credentials{AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(t.Context(), admin, req, hex.EncodeToString(sum[:]), "sts", s.Region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("STS AssumeRole at %s: %v", s.Endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Result struct {
			Credentials struct {
				AccessKeyID     string `xml:"AccessKeyId"`
				SecretAccessKey string `xml:"SecretAccessKey"`
				SessionToken    string `xml:"SessionToken"`
			} `xml:"Credentials"`
		} `xml:"AssumeRoleResult"`
	}
	if resp.StatusCode != http.StatusOK || xml.Unmarshal(raw, &out) != nil || out.Result.Credentials.SessionToken == "" {
		testenv.Unavailable(t, "the S3 server at %s gave no temporary credentials for a session policy (STS AssumeRole: %s %.300s); the grant tests need MinIO's STS (WWEBSTORE_S3_IMAGE, or a MinIO at WWEBSTORE_S3_URL)", s.Endpoint, resp.Status, raw)
	}
	c := out.Result.Credentials
	return aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Source: "AssumeRole"}
}

// grantedStore returns a store under a prefix of its own ("<namespace>/wa") in a new bucket (or
// WWEBSTORE_S3_BUCKET), whose client has temporary credentials limited to grantPolicy(…, drop...).
// It also returns the credentials and the store's URL. Without s3:ListBucket, New's access check
// fails (TestGrantsMissing checks that), so the store is made with SkipAccessCheck.
func grantedStore(t *testing.T, drop ...string) (st *s3store.Store, creds aws.Credentials, storeURL string) {
	t.Helper()
	s := s3Server(t)
	bucket, prefix := newBucket(t, s, s.client(nil))
	prefix = path.Join(prefix, "wa")
	creds = assumeRole(t, s, grantPolicy(bucket, prefix, drop...))
	c := s.client(func(o *s3.Options) {
		o.Credentials = credentials.StaticCredentialsProvider{Value: creds}
	})
	o := &s3store.Options{Prefix: prefix, PartSize: s3store.MinPartSize, Concurrency: 3}
	if slices.Contains(drop, "s3:ListBucket") {
		_, err := s3store.New(t.Context(), c, bucket, o)
		if !errors.Is(err, s3store.ErrAccessCheck) {
			t.Fatalf("New without s3:ListBucket: %v; want the access check's error", err)
		}
		t.Logf("New without s3:ListBucket: %v", err)
		if msg := err.Error(); !strings.Contains(msg, "AccessDenied") || !strings.Contains(msg, "s3:ListBucket") || !strings.Contains(msg, "SkipAccessCheck") {
			t.Errorf("New without s3:ListBucket: %q; want AccessDenied, saying to grant s3:ListBucket or set SkipAccessCheck", msg)
		}
		o.SkipAccessCheck = true
	}
	st, err := s3store.New(t.Context(), c, bucket, o)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"endpoint": {s.Endpoint}, "path_style": {"true"}, "region": {s.Region}}
	u := url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix, RawQuery: q.Encode()}
	return st, creds, u.String()
}

// TestGrants runs the conformance suite (History and List included, multipart Saves and their
// aborts too: 5 MiB parts) with credentials that have nothing but the README's policy on the
// store's prefix, and a Session's backup, restore and logout through OpenStore with those
// credentials in the environment (the SDK's default chain).
func TestGrants(t *testing.T) {
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) remoteauth.Store {
			st, _, _ := grantedStore(t)
			return st
		})
	})
	t.Run("Session", func(t *testing.T) {
		_, creds, raw := grantedStore(t)
		for k, v := range map[string]string{
			"AWS_ACCESS_KEY_ID": creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY": creds.SecretAccessKey,
			"AWS_SESSION_TOKEN": creds.SessionToken, "AWS_PROFILE": "",
			"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
		} {
			t.Setenv(k, v)
		}
		st, err := remoteauth.OpenStore(t.Context(), raw)
		if err != nil {
			t.Fatalf("OpenStore(%s): %v", raw, err)
		}
		files := map[string]string{
			"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log": string(bytes.Repeat([]byte("login "), 20<<10)),
		}
		src := newSession(t, st, nil)
		for i, local := range []string{"first", "second"} {
			files["Default/Local Storage/leveldb/000003.log"] = local
			filetree.Write(t, src.ProfileDir(), files)
			if _, err := src.Backup(t.Context()); err != nil {
				t.Fatalf("Backup %d: %v", i+1, err)
			}
		}
		if v, err := st.(remoteauth.History).Versions(t.Context(), src.Name()); err != nil || len(v) != 2 {
			t.Fatalf("Versions = %v, %v; want 2 archives", v, err)
		}
		if l, err := st.(remoteauth.Lister).List(t.Context()); err != nil || len(l) != 1 || l[0].Name != src.Name() {
			t.Fatalf("List = %v, %v; want %s alone", l, err, src.Name())
		}
		// The store grants leases: src holds the session until it closes (a rolling deploy).
		if err := src.Close(t.Context()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		dst := newSession(t, st, nil)
		res, err := dst.Restore(t.Context())
		if err != nil || !res.Found || res.FellBack {
			t.Fatalf("Restore = %+v, %v; want the newest archive", res, err)
		}
		if got := filetree.Read(t, dst.ProfileDir()); !maps.Equal(got, files) {
			t.Errorf("restored %d files, not the %d backed up", len(got), len(files))
		}
		if err := dst.Delete(t.Context()); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if ok, err := st.SessionExists(t.Context(), src.Name()); err != nil || ok {
			t.Errorf("SessionExists after Delete = %v, %v; want false, nil", ok, err)
		}
	})
	t.Run("README", func(t *testing.T) {
		// The README's policy document is the one tested here.
		readme, err := os.ReadFile("README.md")
		if err != nil {
			t.Fatal(err)
		}
		_, doc, ok := strings.Cut(string(readme), "### Permissions\n")
		_, doc, ok2 := strings.Cut(doc, "```json\n")
		doc, _, ok3 := strings.Cut(doc, "```")
		if !ok || !ok2 || !ok3 {
			t.Fatal("README.md has no JSON policy under ### Permissions")
		}
		var got, want any
		if err := json.Unmarshal([]byte(doc), &got); err != nil {
			t.Fatalf("README.md's policy: %v", err)
		}
		if err := json.Unmarshal([]byte(grantPolicy("BUCKET", "PREFIX")), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("README.md's policy\n%s\nis not the one tested:\n%s", doc, grantPolicy("BUCKET", "PREFIX"))
		}
	})
}

// TestGrantsMissing checks that credentials without one of the policy's actions fail with the
// store's error wrapping S3's AccessDenied, naming the session; without s3:ListBucket, New's
// access check fails first (grantedStore checks it, then skips the check).
func TestGrantsMissing(t *testing.T) {
	tests := []struct {
		drop string
		op   func(t *testing.T, st remoteauth.Store) error
	}{
		{"s3:PutObject", func(t *testing.T, st remoteauth.Store) error {
			return st.Save(t.Context(), "alice", strings.NewReader("archive"))
		}},
		{"s3:ListBucket", func(t *testing.T, st remoteauth.Store) error {
			// Delete lists the session's history folder.
			return st.Delete(t.Context(), "alice")
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.drop, "s3:"), func(t *testing.T) {
			st, _, _ := grantedStore(t, tt.drop)
			err := tt.op(t, st)
			if err == nil {
				t.Fatalf("without %s: no error; want AccessDenied", tt.drop)
			}
			t.Logf("without %s: %v", tt.drop, err)
			if msg := err.Error(); !strings.Contains(msg, "s3store") || !strings.Contains(msg, `"alice"`) || !strings.Contains(msg, "AccessDenied") {
				t.Errorf("without %s: %q; want the store's error naming the session and wrapping AccessDenied", tt.drop, msg)
			}
		})
	}
}
