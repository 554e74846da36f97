package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wwebstore/wwebstore/remoteauth"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
	"github.com/wwebstore/wwebstore/storetest"
)

func TestConformance(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		st, _ := newStore(t, s, c, nil)
		return st
	})
}

// pattern returns n pseudo-random bytes from seed.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	r.Read(b)
	return b
}

func save(t testing.TB, st remoteauth.Store, session string, data []byte) {
	t.Helper()
	if err := st.Save(t.Context(), session, bytes.NewReader(data)); err != nil {
		t.Fatalf("Save(%q): %v", session, err)
	}
}

func extract(t testing.TB, st remoteauth.Store, session string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := st.Extract(t.Context(), session, &b); err != nil {
		t.Fatalf("Extract(%q): %v", session, err)
	}
	return b.Bytes()
}

func checkNamed(t testing.TB, err error, session string) {
	t.Helper()
	if !strings.Contains(err.Error(), "s3store") || !strings.Contains(err.Error(), session) {
		t.Errorf("error %q does not name the store and session %q", err, session)
	}
}

// TestLayout checks that archives are where wwebjs-aws-s3 puts and looks for them:
// path.join(remoteDataPath, session + ".zip"), content type application/zip, for a single
// PutObject and for a multipart upload, and that an object written there by another program
// (wwebjs-aws-s3) is read back.
func TestLayout(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	for _, tt := range []struct {
		prefix, key string
	}{
		{"sessions", "sessions/RemoteAuth-alice.zip"},
		{"sessions/", "sessions/RemoteAuth-alice.zip"},
		{"a/b//", "a/b/RemoteAuth-alice.zip"},
		{"", "RemoteAuth-alice.zip"},
	} {
		t.Run("prefix="+tt.prefix, func(t *testing.T) {
			bucket, shared := newBucket(t, s, c)
			prefix, want := tt.prefix, tt.key
			if shared != "" {
				prefix, want = shared+"/"+prefix, shared+"/"+want
			}
			// Keep 1: the current archive alone (TestHistoryLayout checks the kept ones).
			st, err := s3store.New(t.Context(), c, bucket, &s3store.Options{Prefix: prefix, PartSize: s3store.MinPartSize, Keep: 1})
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Key("RemoteAuth-alice"); got != want {
				t.Fatalf("Key = %q, want %q", got, want)
			}
			for _, size := range []int{3 << 10, 11<<20 + 1} { // PutObject, then multipart
				data := pattern(uint64(size), size)
				save(t, st, "RemoteAuth-alice", data)
				head, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: &want})
				if err != nil {
					t.Fatalf("HeadObject %s after a Save of %d bytes: %v", want, size, err)
				}
				if ct := aws.ToString(head.ContentType); ct != "application/zip" {
					t.Errorf("content type %q, want application/zip", ct)
				}
				if n := aws.ToInt64(head.ContentLength); n != int64(size) {
					t.Errorf("object size %d, want %d", n, size)
				}
				out, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(shared)})
				if err != nil {
					t.Fatal(err)
				}
				if len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != want {
					var keys []string
					for _, o := range out.Contents {
						keys = append(keys, aws.ToString(o.Key))
					}
					t.Errorf("objects %q, want only %q", keys, want)
				}
			}
			// An archive written by wwebjs-aws-s3 (a plain PutObject at its key) reads back.
			theirs := pattern(7, 100<<10)
			if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &want, Body: bytes.NewReader(theirs), ContentType: aws.String("application/zip")}); err != nil {
				t.Fatal(err)
			}
			if ok, err := st.SessionExists(t.Context(), "RemoteAuth-alice"); !ok || err != nil {
				t.Errorf("SessionExists after a foreign PutObject = %v, %v", ok, err)
			}
			if !bytes.Equal(extract(t, st, "RemoteAuth-alice"), theirs) {
				t.Error("Extract does not return the object written at the wwebjs-aws-s3 key")
			}
			if err := st.Delete(t.Context(), "RemoteAuth-alice"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: &want}); err == nil {
				t.Error("the object is still there after Delete")
			}
		})
	}
}

// TestMissingBucket: a missing bucket fails New (its access check: NoSuchBucket); with
// SkipAccessCheck, it is an error for every method, never a missing session.
func TestMissingBucket(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	const bucket = "wwebstore-test-no-such-bucket"
	if _, err := s3store.New(t.Context(), c, bucket, nil); !errors.Is(err, s3store.ErrAccessCheck) || !strings.Contains(err.Error(), "bucket does not exist") {
		t.Errorf("New in a missing bucket: %v; want ErrAccessCheck saying that the bucket does not exist", err)
	}
	st, err := s3store.New(t.Context(), c, bucket, &s3store.Options{SkipAccessCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.SessionExists(t.Context(), "a"); err == nil {
		t.Errorf("SessionExists in a missing bucket = %v, nil; want an error", ok)
	} else {
		checkNamed(t, err, "a")
		t.Logf("SessionExists: %v", err)
	}
	if err := st.Delete(t.Context(), "a"); err == nil {
		t.Error("Delete in a missing bucket succeeded")
	}
	if err := st.Extract(t.Context(), "a", io.Discard); err == nil || errors.Is(err, remoteauth.ErrNotFound) {
		t.Errorf("Extract from a missing bucket: %v, want an error that is not ErrNotFound", err)
	}
	if err := st.Save(t.Context(), "a", strings.NewReader("x")); err == nil {
		t.Error("Save into a missing bucket succeeded")
	} else {
		checkNamed(t, err, "a")
	}
}

// TestBadCredentials: wrong credentials fail New (its access check); with SkipAccessCheck,
// SessionExists with them is an error, not "no session".
func TestBadCredentials(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	bucket, _ := newBucket(t, s, c)
	bad := *s
	bad.SecretAccessKey = "wrong-secret"
	if _, err := s3store.New(t.Context(), bad.client(nil), bucket, nil); !errors.Is(err, s3store.ErrAccessCheck) || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("New with a wrong secret: %v; want ErrAccessCheck saying that the credentials were refused", err)
	}
	st, err := s3store.New(t.Context(), bad.client(nil), bucket, &s3store.Options{SkipAccessCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := st.SessionExists(t.Context(), "RemoteAuth-x")
	if err == nil {
		t.Fatalf("SessionExists with a wrong secret = %v, nil; want an error", ok)
	}
	checkNamed(t, err, "RemoteAuth-x")
	t.Logf("the error: %v", err)
}

func TestNewOptions(t *testing.T) {
	c := s3.New(s3.Options{Region: "us-east-1"})
	for _, o := range []s3store.Options{
		{PartSize: 1 << 20},
		{PartSize: 6 << 30},
		{Concurrency: -1},
		{ServerSideEncryption: "rot13"},
		{SSEKMSKeyID: "k"},
		{ServerSideEncryption: "AES256", SSEKMSKeyID: "k"},
	} {
		if _, err := s3store.New(context.Background(), c, "b", &o); err == nil {
			t.Errorf("New with %+v succeeded", o)
		}
	}
	if _, err := s3store.New(context.Background(), c, "", nil); err == nil {
		t.Error("New with an empty bucket succeeded")
	}
	if _, err := s3store.New(context.Background(), nil, "b", nil); err == nil {
		t.Error("New with a nil client succeeded")
	}
	// The client has no endpoint or credentials: no request, so SkipAccessCheck.
	if _, err := s3store.New(context.Background(), c, "b", &s3store.Options{ServerSideEncryption: "aws:kms", SSEKMSKeyID: "k", StorageClass: "STANDARD_IA", SkipAccessCheck: true}); err != nil {
		t.Error(err)
	}
}

// TestInvalidNameNoRequest: invalid names are refused before any request (the client points
// nowhere and would fail otherwise; so does New's access check, hence SkipAccessCheck).
func TestInvalidNameNoRequest(t *testing.T) {
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1")})
	st, err := s3store.New(context.Background(), c, "b", &s3store.Options{SkipAccessCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "a/b", "../x", "a.b"} {
		if _, err := st.SessionExists(context.Background(), name); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("SessionExists(%q): %v", name, err)
		}
		if err := st.Save(context.Background(), name, strings.NewReader("x")); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("Save(%q): %v", name, err)
		}
	}
}
