package testservers

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// The S3 server's settings besides its endpoint.
const (
	// S3Region is the region of every S3 client and URL of this package.
	S3Region = "us-east-1"
	// S3DefaultKey is the access key and the secret key of the S3 containers (MinIO's root user
	// and password), and the default of WWEBSTORE_S3_ACCESS_KEY and WWEBSTORE_S3_SECRET_KEY.
	S3DefaultKey = "minioadmin"

	envS3AccessKey = "WWEBSTORE_S3_ACCESS_KEY"
	envS3SecretKey = "WWEBSTORE_S3_SECRET_KEY"
	envS3Bucket    = "WWEBSTORE_S3_BUCKET"
)

var s3Engine = register(&engine{
	name:         "s3",
	title:        "S3",
	envURL:       "WWEBSTORE_S3_URL",
	envImage:     "WWEBSTORE_S3_IMAGE",
	defaultImage: "minio/minio",
	exampleURL:   "http://127.0.0.1:9000 (with " + envS3AccessKey + " and " + envS3SecretKey + ")",
	// The image must behave as the official minio/minio: command "server /data", port 9000,
	// credentials from MINIO_ROOT_USER and MINIO_ROOT_PASSWORD, health at /minio/health/live
	// (scripts/test builds such an image FROM scratch: the wait strategy must not exec a shell).
	start: func(ctx context.Context, image string) (testcontainers.Container, string, error) {
		ctr, err := testcontainers.Run(ctx, image,
			testcontainers.WithExposedPorts("9000/tcp"),
			testcontainers.WithEnv(map[string]string{
				"MINIO_ROOT_USER": S3DefaultKey, "MINIO_ROOT_PASSWORD": S3DefaultKey,
				"MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_CI_CD": "1",
			}),
			testcontainers.WithCmd("server", "/data"),
			testcontainers.WithWaitStrategy(wait.ForHTTP("/minio/health/live").WithPort("9000/tcp").
				WithStartupTimeout(startTimeout).WithPollInterval(100*time.Millisecond)),
		)
		if ctr == nil { // a typed nil in the interface would look like a container
			return nil, "", err
		}
		if err != nil {
			return ctr, "", err
		}
		ep, err := ctr.PortEndpoint(ctx, "9000/tcp", "http")
		if err != nil {
			return ctr, "", err
		}
		// The port may be served before S3 answers: wait for ListBuckets.
		c := S3Config{Endpoint: ep, Region: S3Region, AccessKeyID: S3DefaultKey, SecretAccessKey: S3DefaultKey}.Client()
		for {
			_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
			if err == nil {
				return ctr, ep, nil
			}
			select {
			case <-ctx.Done():
				return ctr, "", fmt.Errorf("the S3 server does not answer ListBuckets: %w", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	},
})

// S3Config is an S3 server that the tests of a binary share, and how to reach it.
type S3Config struct {
	Endpoint                     string // http://HOST:PORT
	Region                       string // S3Region
	AccessKeyID, SecretAccessKey string
	// Bucket is WWEBSTORE_S3_BUCKET: an existing bucket in which every namespace is a prefix.
	// Empty: every namespace is a bucket of its own.
	Bucket string
}

// S3Endpoint returns the S3 server that the tests of this binary share: WWEBSTORE_S3_URL's (with
// WWEBSTORE_S3_ACCESS_KEY, WWEBSTORE_S3_SECRET_KEY and WWEBSTORE_S3_BUCKET), or the shared
// container, started on the first call. Without a server, the test is unavailable.
func S3Endpoint(t testing.TB) S3Config {
	t.Helper()
	c := S3Config{Endpoint: s3Engine.serverURL(t), Region: S3Region, AccessKeyID: S3DefaultKey, SecretAccessKey: S3DefaultKey}
	if s3Engine.fromEnv() {
		if k := os.Getenv(envS3AccessKey); k != "" {
			c.AccessKeyID, c.SecretAccessKey = k, os.Getenv(envS3SecretKey)
		}
		c.Bucket = os.Getenv(envS3Bucket)
	}
	return c
}

// Client returns a path-style client of the server with static credentials. The optFns change
// its options further (a fault proxy's endpoint, fewer retries).
func (c S3Config) Client(optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       c.Region,
		BaseEndpoint: aws.String(c.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, ""),
	}, optFns...)
}

// NewBucket returns a bucket and a prefix on c's server that no other test uses: a new bucket
// wwebstore-test-<id> and no prefix, or, when c.Bucket is set (WWEBSTORE_S3_BUCKET), that bucket
// and the prefix wwebstore-test/<id>. When the test ends, the multipart uploads open under the
// prefix are aborted, the objects under it deleted, and a new bucket removed.
func (c S3Config) NewBucket(t testing.TB) (bucket, prefix string) {
	t.Helper()
	client := c.Client()
	id := randomID()
	if c.Bucket != "" {
		bucket, prefix = c.Bucket, "wwebstore-test/"+id
	} else {
		bucket = "wwebstore-test-" + id
		ctx, cancel := opContext()
		defer cancel()
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
			t.Fatalf("testservers: CreateBucket %s on %s: %v (if the keys may not create buckets, set %s to a bucket they may write)",
				bucket, c.Endpoint, err, envS3Bucket)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := opContext()
		defer cancel()
		if err := emptyBucket(ctx, client, bucket, prefix); err != nil {
			t.Errorf("testservers: emptying %s on %s: %v", path(bucket, prefix), c.Endpoint, err)
			return
		}
		if c.Bucket == "" {
			if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
				t.Errorf("testservers: DeleteBucket %s on %s: %v", bucket, c.Endpoint, err)
			}
		}
	})
	return bucket, prefix
}

// S3 returns the shared S3 server with a bucket of its own (or a prefix, see S3Config.NewBucket),
// emptied and removed when the test ends. Env holds the credentials for the AWS SDK's default
// chain, and empties AWS_SESSION_TOKEN and AWS_PROFILE, which would otherwise send a developer's
// token with these keys, or make the SDK look for a profile of theirs.
func S3(t testing.TB) Server {
	t.Helper()
	cfg := S3Endpoint(t)
	bucket, prefix := cfg.NewBucket(t)
	q := url.Values{"endpoint": {cfg.Endpoint}, "path_style": {"true"}, "region": {cfg.Region}}
	u := url.URL{Scheme: "s3", Host: bucket, RawQuery: q.Encode()}
	if prefix != "" {
		u.Path = "/" + prefix
	}
	return Server{Name: s3Engine.name, URL: u.String(), Env: map[string]string{
		"AWS_ACCESS_KEY_ID":     cfg.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": cfg.SecretAccessKey,
		"AWS_SESSION_TOKEN":     "",
		"AWS_PROFILE":           "",
	}}
}

// path returns bucket/prefix for messages.
func path(bucket, prefix string) string {
	if prefix == "" {
		return "bucket " + bucket
	}
	return "prefix " + prefix + "/ of bucket " + bucket
}

// emptyBucket aborts the multipart uploads and deletes the objects under prefix (the whole bucket
// if it is empty).
func emptyBucket(ctx context.Context, c *s3.Client, bucket, prefix string) error {
	if prefix != "" {
		prefix += "/"
	}
	uploads := s3.NewListMultipartUploadsPaginator(c, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: aws.String(prefix)})
	for uploads.HasMorePages() {
		page, err := uploads.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("ListMultipartUploads: %w", err)
		}
		for _, up := range page.Uploads {
			if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: up.Key, UploadId: up.UploadId}); err != nil {
				return fmt.Errorf("AbortMultipartUpload %s: %w", aws.ToString(up.Key), err)
			}
		}
	}
	objects := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(prefix)})
	for objects.HasMorePages() {
		page, err := objects.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("ListObjectsV2: %w", err)
		}
		for _, o := range page.Contents {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				return fmt.Errorf("DeleteObject %s: %w", aws.ToString(o.Key), err)
			}
		}
	}
	return nil
}
