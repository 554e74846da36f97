package redisstore

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseURL checks how a "redis" or "rediss" URL becomes a client configuration: never a
// panic; on success, the configuration of the topology it names and valid Options; on failure,
// an error that says where it comes from and does not show the password. Seeds:
// testdata/fuzz/FuzzParseURL.
func FuzzParseURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Skip()
		}
		cfg, err := parseURL(u)
		if err != nil {
			if cfg != nil {
				t.Fatalf("parseURL(%q) returned a configuration and an error: %v", raw, err)
			}
			if !strings.HasPrefix(err.Error(), "redisstore: URL ") {
				t.Fatalf("parseURL(%q) = %v; the error does not say where it comes from", raw, err)
			}
			if p, ok := u.User.Password(); ok && len(p) >= 8 && strings.Count(raw, p) == 1 && strings.Contains(err.Error(), p) {
				t.Fatalf("parseURL(%q) = %v: the error shows the password", raw, err)
			}
			return
		}
		switch {
		case cfg.topology == single && cfg.single == nil,
			cfg.topology == cluster && cfg.cluster == nil,
			cfg.topology == failover && cfg.failover == nil:
			t.Fatalf("parseURL(%q): topology %d without its client options", raw, cfg.topology)
		}
		if err := cfg.opts.validate(); err != nil {
			t.Fatalf("parseURL(%q) accepted invalid Options: %v", raw, err)
		}
	})
}
