package s3store_test

import (
	"context"
	"log"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wwebstore/wwebstore/remoteauth"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

// A store in an AWS bucket, with the keys that wwebjs-aws-s3 uses for remoteDataPath "sessions":
// sessions/RemoteAuth-<clientId>.zip.
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx) // credentials and region from the standard AWS chain
	if err != nil {
		log.Fatal(err)
	}
	st, err := s3store.New(ctx, s3.NewFromConfig(cfg), "my-bucket", &s3store.Options{
		Prefix:               "sessions",
		ServerSideEncryption: "AES256",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Save(ctx, "RemoteAuth-alice", strings.NewReader("zip bytes")); err != nil {
		log.Print(err)
	}
}

// An S3-compatible server (MinIO, versitygw, Ceph, R2): set the endpoint and path-style
// addressing on the client.
func Example_compatible() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		log.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:9000")
		o.UsePathStyle = true
	})
	st, err := s3store.New(ctx, client, "sessions", nil)
	if err != nil {
		log.Fatal(err)
	}
	_ = st
}

// The same through a URL, for configuration files and the command-line tool.
func Example_url() {
	ctx := context.Background()
	st, err := remoteauth.OpenStore(ctx, "s3://sessions/wwebjs?region=us-east-1&endpoint=http://127.0.0.1:9000&path_style=true")
	if err != nil {
		log.Fatal(err)
	}
	_ = st
}

// The archives that a store keeps of a session (Options.Keep, 2 by default), newest first, and
// the one before the current archive, extracted by its ID.
func ExampleStore_Versions() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	st, err := s3store.New(ctx, s3.NewFromConfig(cfg), "my-bucket", &s3store.Options{Prefix: "sessions", Keep: 3})
	if err != nil {
		log.Fatal(err)
	}
	versions, err := st.Versions(ctx, "RemoteAuth-alice")
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range versions {
		log.Printf("archive %s: %d bytes, saved %v", v.ID, v.Size, v.Saved)
	}
	if len(versions) > 1 {
		f, err := os.Create("previous.zip")
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		if err := st.ExtractVersion(ctx, "RemoteAuth-alice", versions[1].ID, f); err != nil {
			log.Print(err)
		}
	}
}
