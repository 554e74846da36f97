package s3store_test

// Real S3 servers for the tests: the one WWEBSTORE_S3_URL names (with WWEBSTORE_S3_ACCESS_KEY and
// WWEBSTORE_S3_SECRET_KEY), or a container started by testcontainers-go from WWEBSTORE_S3_IMAGE
// (default minio/minio). Every store of a test gets a bucket of its own, emptied and removed when
// the test ends; with WWEBSTORE_S3_BUCKET set, stores get a prefix of their own in that bucket
// instead, for servers where the test credentials may not create buckets.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/wwebstore/wwebstore/internal/testenv"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

const (
	envURL       = "WWEBSTORE_S3_URL"        // an existing server's endpoint, http://host:port
	envAccessKey = "WWEBSTORE_S3_ACCESS_KEY" // its credentials (default minioadmin/minioadmin)
	envSecretKey = "WWEBSTORE_S3_SECRET_KEY"
	envBucket    = "WWEBSTORE_S3_BUCKET" // optional: an existing bucket to use prefixes in
	envImage     = "WWEBSTORE_S3_IMAGE"
	defaultImage = "minio/minio"
	// Credentials of the servers that the tests start, and the default for WWEBSTORE_S3_URL.
	rootUser, rootPassword = "minioadmin", "minioadmin"
	region                 = "us-east-1"
)

const howToRun = "run scripts/test stores/s3 (it sets up a container engine and an S3 image), or set " + envURL +
	"=http://127.0.0.1:9000 (and " + envAccessKey + ", " + envSecretKey + ") to test against a server of yours: " +
	"tests create buckets named wwebstore-test-… and remove them"

// server is the S3 endpoint the tests of this binary use.
type server struct {
	endpoint         string
	access, secret   string
	sharedBucketName string // WWEBSTORE_S3_BUCKET
}

var (
	srvOnce sync.Once
	srv     *server
	srvErr  error
)

// s3Server returns the server for t: WWEBSTORE_S3_URL's, or one container shared by the tests
// of this binary (removed when the binary ends, see TestMain).
func s3Server(t testing.TB) *server {
	t.Helper()
	if u := os.Getenv(envURL); u != "" {
		s := &server{endpoint: u, access: os.Getenv(envAccessKey), secret: os.Getenv(envSecretKey), sharedBucketName: os.Getenv(envBucket)}
		if s.access == "" {
			s.access, s.secret = rootUser, rootPassword
		}
		return s
	}
	if err := engineHealthy(); err != nil {
		testenv.Unavailable(t, "no S3 server: %s is not set and there is no container engine (%v); %s", envURL, err, howToRun)
	}
	srvOnce.Do(func() { srv, srvErr = startContainer(t) })
	if srvErr != nil {
		t.Fatal(srvErr)
	}
	return srv
}

var containers struct {
	sync.Mutex
	list []testcontainers.Container
}

func TestMain(m *testing.M) {
	code := m.Run()
	containers.Lock()
	for _, c := range containers.list {
		testcontainers.TerminateContainer(c)
	}
	containers.Unlock()
	os.Exit(code)
}

func image() string {
	if img := os.Getenv(envImage); img != "" {
		return img
	}
	return defaultImage
}

// startContainer starts an S3 server from image(), which must behave as the official
// minio/minio image: command "server /data", port 9000, credentials from MINIO_ROOT_USER and
// MINIO_ROOT_PASSWORD, health at /minio/health/live (scripts/test builds such an image,
// localhost/wwebstore-s3, FROM scratch: the wait strategies must not exec a shell in it).
func startContainer(t testing.TB) (*server, error) {
	img := image()
	opts := []testcontainers.ContainerCustomizer{
		// Not tclog.TestLogger(t): the container outlives t (TestMain removes it).
		testcontainers.WithExposedPorts("9000/tcp"),
		testcontainers.WithEnv(map[string]string{
			"MINIO_ROOT_USER": rootUser, "MINIO_ROOT_PASSWORD": rootPassword,
			"MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_CI_CD": "1",
		}),
		testcontainers.WithCmd("server", "/data"),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/minio/health/live").WithPort("9000/tcp").
			WithStartupTimeout(2 * time.Minute).WithPollInterval(100 * time.Millisecond)),
	}
	ctx := context.Background()
	start := time.Now()
	ctr, err := testcontainers.Run(ctx, img, opts...)
	if ctr != nil {
		containers.Lock()
		containers.list = append(containers.list, ctr)
		containers.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("starting an S3 server from image %s (set %s to use another): %w", img, envImage, err)
	}
	ep, err := ctr.PortEndpoint(ctx, "9000/tcp", "http")
	if err != nil {
		return nil, err
	}
	s := &server{endpoint: ep, access: rootUser, secret: rootPassword}
	// The port may listen before S3 answers: wait for ListBuckets.
	c := s.client(nil)
	for {
		_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err == nil {
			break
		}
		if time.Since(start) > 2*time.Minute {
			return nil, fmt.Errorf("the S3 server from %s does not answer: %w", img, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("S3 server from %s ready in %v", img, time.Since(start).Round(time.Millisecond))
	return s, nil
}

// engineHealthy reports why testcontainers cannot reach a container engine, if it cannot.
func engineHealthy() (err error) {
	defer func() {
		if r := recover(); r != nil { // testcontainers panics when it finds no engine at all
			err = fmt.Errorf("%v", r)
		}
	}()
	provider, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return err
	}
	defer provider.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return provider.Health(ctx)
}

// client returns a path-style client of the server; endpoint overrides the server's (a fault
// proxy's). modify, if not nil, changes the options further.
func (s *server) client(modify func(*s3.Options), endpoint ...string) *s3.Client {
	ep := s.endpoint
	if len(endpoint) > 0 {
		ep = endpoint[0]
	}
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(ep),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.access, s.secret, ""),
	}, func(o *s3.Options) {
		if modify != nil {
			modify(o)
		}
	})
}

// newBucket returns a bucket and prefix that no other test uses: a new bucket, or a new prefix in
// WWEBSTORE_S3_BUCKET. When the test ends, it checks that no multipart upload is left open in it
// (every failed Save must abort its upload), then deletes what the test stored.
func newBucket(t testing.TB, s *server, c *s3.Client) (bucket, prefix string) {
	t.Helper()
	ctx := context.Background()
	if s.sharedBucketName != "" {
		bucket, prefix = s.sharedBucketName, fmt.Sprintf("wwebstore-test/%d-%x", time.Now().UnixNano(), rand.Uint32())
	} else {
		bucket = fmt.Sprintf("wwebstore-test-%d-%x", time.Now().UnixNano(), rand.Uint32())
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
			t.Fatalf("CreateBucket %s: %v", bucket, err)
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			if open := openUploads(t, c, bucket, prefix); len(open) > 0 {
				t.Errorf("multipart uploads left open: %q", open)
			}
		}
		emptyBucket(t, c, bucket, prefix)
		if s.sharedBucketName == "" {
			if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
				t.Logf("DeleteBucket %s: %v", bucket, err)
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

// emptyBucket aborts the uploads and deletes the objects under prefix.
func emptyBucket(t testing.TB, c *s3.Client, bucket, prefix string) {
	ctx := context.Background()
	if out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: aws.String(prefix)}); err == nil {
		for _, u := range out.Uploads {
			c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Logf("ListObjectsV2 %s: %v", bucket, err)
			return
		}
		for _, o := range page.Contents {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				t.Logf("DeleteObject %s/%s: %v", bucket, aws.ToString(o.Key), err)
			}
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
