package postgresstore

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseURL checks how a "postgres" URL is split into pgx's connection string and the
// store's Options: never a panic; on success, a connection string that parses and holds none of
// the store's parameters (pgx would send them to the server, which refuses the connection).
// Seeds: testdata/fuzz/FuzzParseURL.
func FuzzParseURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Skip()
		}
		dsn, opts, err := parseURL(u)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "postgresstore: ") {
				t.Fatalf("parseURL(%q) = %v; the error does not say where it comes from", raw, err)
			}
			return
		}
		if opts == nil {
			t.Fatalf("parseURL(%q) returned nil Options", raw)
		}
		d, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parseURL(%q) = %q, which does not parse: %v", raw, dsn, err)
		}
		q, err := url.ParseQuery(d.RawQuery)
		if err != nil {
			t.Fatalf("parseURL(%q) = %q, whose query does not parse: %v", raw, dsn, err)
		}
		for _, p := range []string{paramTable, paramChunkTable, paramSchema, paramChunkSize, paramCreateTables, paramUsePoolMode} {
			if q.Has(p) {
				t.Fatalf("parseURL(%q) = %q, which still holds the store's parameter %s", raw, dsn, p)
			}
		}
	})
}
