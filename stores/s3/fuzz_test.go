package s3store

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseURL checks how an "s3" URL becomes a bucket, a prefix and Options: never a panic; on
// success, a bucket, no credentials taken from the URL, and valid Options; on failure, an error
// that says where it comes from. Seeds: testdata/fuzz/FuzzParseURL.
func FuzzParseURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Skip()
		}
		cfg, err := parseURL(u)
		if err != nil {
			if cfg != nil || !strings.HasPrefix(err.Error(), "s3store: URL ") {
				t.Fatalf("parseURL(%q) = %v, %v", raw, cfg, err)
			}
			return
		}
		switch {
		case cfg.bucket == "" || cfg.bucket != u.Host:
			t.Fatalf("parseURL(%q): bucket %q, host %q", raw, cfg.bucket, u.Host)
		case u.User != nil:
			t.Fatalf("parseURL(%q) accepted credentials in the URL", raw)
		}
		if err := cfg.opts.validate(); err != nil {
			t.Fatalf("parseURL(%q) accepted invalid Options: %v", raw, err)
		}
	})
}
