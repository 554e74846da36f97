package mongostore

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseURL checks how a "mongodb" URL is split into the driver's connection string, the
// database and the Options: never a panic; on success, a database name MongoDB accepts and a
// connection string that parses and holds none of the store's parameters. Seeds:
// testdata/fuzz/FuzzParseURL.
func FuzzParseURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Skip()
		}
		uri, db, opts, err := parseURL(u)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "mongostore: ") {
				t.Fatalf("parseURL(%q) = %v; the error does not say where it comes from", raw, err)
			}
			return
		}
		if opts == nil || db == "" || strings.ContainsAny(db, "/\\. \"$\x00") {
			t.Fatalf("parseURL(%q) = database %q, Options %v", raw, db, opts)
		}
		d, err := url.Parse(uri)
		if err != nil {
			t.Fatalf("parseURL(%q) = %q, which does not parse: %v", raw, uri, err)
		}
		q, err := url.ParseQuery(d.RawQuery)
		if err != nil {
			t.Fatalf("parseURL(%q) = %q, whose query does not parse: %v", raw, uri, err)
		}
		for _, p := range []string{paramBucket, paramChunkSize, paramGrace, paramRetired, paramKeep} {
			if q.Has(p) {
				t.Fatalf("parseURL(%q) = %q, which still holds the store's parameter %s", raw, uri, p)
			}
		}
	})
}
