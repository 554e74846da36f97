package s3store_test

// Real S3 servers for the tests: the one that internal/testservers shares among the tests of the
// binary (WWEBSTORE_S3_URL's, or a MinIO container). Every store of a test gets a bucket of its
// own, emptied and removed when the test ends; with WWEBSTORE_S3_BUCKET set, stores get a prefix
// of their own in that bucket instead, for servers where the test credentials may not create
// buckets.

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wwebstore/wwebstore/internal/testservers"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

func TestMain(m *testing.M) { testservers.Main(m) }

// server is the S3 server that the tests of this binary share.
type server struct{ testservers.S3Config }

// s3Server returns the server that the tests of the binary share (testservers.S3Endpoint).
func s3Server(t testing.TB) *server {
	t.Helper()
	return &server{testservers.S3Endpoint(t)}
}

// client returns a path-style client of the server; endpoint overrides the server's (a fault
// proxy's). modify, if not nil, changes the options further.
func (s *server) client(modify func(*s3.Options), endpoint ...string) *s3.Client {
	return s.Client(func(o *s3.Options) {
		if len(endpoint) > 0 {
			o.BaseEndpoint = aws.String(endpoint[0])
		}
		if modify != nil {
			modify(o)
		}
	})
}

// newBucket returns a bucket and prefix on s that no other test uses (testservers'
// S3Config.NewBucket, which empties them when the test ends). Before that, unless the test has
// failed already, it checks through c that no multipart upload is left open in it: every failed
// Save must abort its upload.
func newBucket(t testing.TB, s *server, c *s3.Client) (bucket, prefix string) {
	t.Helper()
	bucket, prefix = s.NewBucket(t)
	t.Cleanup(func() {
		if !t.Failed() {
			if open := openUploads(t, c, bucket, prefix); len(open) > 0 {
				t.Errorf("multipart uploads left open: %q", open)
			}
		}
	})
	return bucket, prefix
}

// openUploads returns the keys of the multipart uploads open under prefix.
func openUploads(t testing.TB, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	out, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("ListMultipartUploads %s: %v", bucket, err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// abortUploads aborts the multipart uploads open in bucket.
func abortUploads(t testing.TB, c *s3.Client, bucket string) {
	t.Helper()
	ctx := context.Background()
	out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatalf("ListMultipartUploads %s: %v", bucket, err)
	}
	for _, u := range out.Uploads {
		if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId}); err != nil {
			t.Fatalf("AbortMultipartUpload %s: %v", aws.ToString(u.Key), err)
		}
	}
}

// newStore returns a store in a bucket (or prefix) of its own, with options opts (nil: the
// test defaults: the smallest part size and a concurrency of 3, so that the conformance sizes
// cross several parts).
func newStore(t testing.TB, s *server, c *s3.Client, opts *s3store.Options) (*s3store.Store, string) {
	t.Helper()
	bucket, prefix := newBucket(t, s, c)
	o := s3store.Options{PartSize: s3store.MinPartSize, Concurrency: 3}
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = prefix
	} else if prefix != "" {
		o.Prefix = prefix + "/" + o.Prefix
	}
	st, err := s3store.New(t.Context(), c, bucket, &o)
	if err != nil {
		t.Fatal(err)
	}
	return st, bucket
}

// isNetworkError reports whether err comes from the connection rather than from S3.
func isNetworkError(err error) bool {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "use of closed network connection")
}
