package s3store

import (
	"net/url"
	"strings"
	"testing"
)

// TestParseURL checks how s3:// URLs become a bucket, client settings and Options, without a
// server.
func TestParseURL(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want urlConfig
		err  string
	}{
		{url: "s3://bucket", want: urlConfig{bucket: "bucket"}},
		{url: "s3://bucket/", want: urlConfig{bucket: "bucket"}},
		{url: "s3://bucket/sessions/", want: urlConfig{bucket: "bucket", opts: Options{Prefix: "sessions/"}}},
		{url: "s3://bucket/a/b?region=eu-west-1&endpoint=http://127.0.0.1:9000&path_style=true", want: urlConfig{
			bucket: "bucket", region: "eu-west-1", endpoint: "http://127.0.0.1:9000", pathStyle: true, opts: Options{Prefix: "a/b"}}},
		{url: "s3://b?part_size=16777216&concurrency=8&sse=aws:kms&kms_key_id=arn:aws:kms:k&storage_class=STANDARD_IA", want: urlConfig{
			bucket: "b", opts: Options{PartSize: 16 << 20, Concurrency: 8, ServerSideEncryption: "aws:kms", SSEKMSKeyID: "arn:aws:kms:k", StorageClass: "STANDARD_IA"}}},
		{url: "s3://b?sse=AES256", want: urlConfig{bucket: "b", opts: Options{ServerSideEncryption: "AES256"}}},
		{url: "s3://b/p?keep=3", want: urlConfig{bucket: "b", opts: Options{Prefix: "p", Keep: 3}}},
		{url: "s3://b?keep=1", want: urlConfig{bucket: "b", opts: Options{Keep: 1}}},
		{url: "s3://b?check=false", want: urlConfig{bucket: "b", opts: Options{SkipAccessCheck: true}}},
		{url: "s3://b?check=true", want: urlConfig{bucket: "b"}},
		{url: "s3://b?check=no", err: "check"},
		{url: "s3://b?keep=0", err: "keep"},
		{url: "s3://b?keep=-2", err: "keep"},
		{url: "s3://b?keep=two", err: "keep"},
		{url: "s3://b/s/a.zip.history", err: "history folder"},
		{url: "s3:///prefix", err: "no bucket"},
		{url: "s3://key:secret@b", err: "credential chain"},
		{url: "s3://b?part_size=1024", err: "part size"},
		{url: "s3://b?part_size=x", err: "part_size"},
		{url: "s3://b?concurrency=x", err: "concurrency"},
		{url: "s3://b?path_style=maybe", err: "path_style"},
		{url: "s3://b?endpoint=localhost:9000", err: "endpoint"},
		{url: "s3://b?sse=rot13", err: "server-side encryption"},
		{url: "s3://b?kms_key_id=k", err: "KMS"},
		{url: "s3://b?prefix=x", err: "unknown parameter"},
		{url: "s3://b#frag", err: "fragment"},
	} {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseURL(u)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseURL(%q): %v, want an error about %q", tt.url, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseURL(%q): %v", tt.url, err)
			continue
		}
		if *got != tt.want {
			t.Errorf("parseURL(%q) = %+v, want %+v", tt.url, *got, tt.want)
		}
	}
}
