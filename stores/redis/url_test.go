package redisstore

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestParseURL checks how URLs become a client configuration and Options, without a server.
func TestParseURL(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want func(t *testing.T, c *urlConfig)
		err  string // in the error, if one is expected
	}{
		{url: "redis://localhost:6379/0", want: func(t *testing.T, c *urlConfig) {
			if c.topology != single || c.single.Addr != "localhost:6379" || c.single.DB != 0 || c.single.TLSConfig != nil {
				t.Errorf("got %+v", c.single)
			}
			if c.opts != (Options{}) {
				t.Errorf("options %+v, want the defaults", c.opts)
			}
		}},
		{url: "redis://", want: func(t *testing.T, c *urlConfig) {
			if c.single.Addr != "localhost:6379" {
				t.Errorf("Addr %q, want go-redis's default localhost:6379", c.single.Addr)
			}
		}},
		{url: "rediss://user:secret@cache.example:6380/2", want: func(t *testing.T, c *urlConfig) {
			o := c.single
			if o.Addr != "cache.example:6380" || o.DB != 2 || o.Username != "user" || o.Password != "secret" {
				t.Errorf("got %+v", o)
			}
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example" || o.TLSConfig.InsecureSkipVerify {
				t.Errorf("TLS config %+v, want one that checks cache.example", o.TLSConfig)
			}
		}},
		{url: "rediss://h?skip_verify=true", want: func(t *testing.T, c *urlConfig) {
			if c.single.TLSConfig == nil || !c.single.TLSConfig.InsecureSkipVerify {
				t.Errorf("TLS config %+v, want InsecureSkipVerify", c.single.TLSConfig)
			}
		}},
		{url: "redis://h/0?prefix=app%3Asessions%3A&chunk_size=65536&ttl=720h&dial_timeout=3s&pool_size=7", want: func(t *testing.T, c *urlConfig) {
			want := Options{KeyPrefix: "app:sessions:", ChunkSize: 65536, TTL: 720 * time.Hour}
			if c.opts != want {
				t.Errorf("options %+v, want %+v", c.opts, want)
			}
			if c.single.DialTimeout != 3*time.Second || c.single.PoolSize != 7 {
				t.Errorf("go-redis options %+v: the store's own parameters must not hide theirs", c.single)
			}
		}},
		{url: "redis://h?ttl=3600", want: func(t *testing.T, c *urlConfig) {
			if c.opts.TTL != time.Hour {
				t.Errorf("ttl=3600 gave %v, want 1h (a plain number counts seconds)", c.opts.TTL)
			}
		}},
		{url: "redis://h?keep=3", want: func(t *testing.T, c *urlConfig) {
			if c.opts.Keep != 3 {
				t.Errorf("keep=3 gave Keep %d", c.opts.Keep)
			}
		}},
		{url: "redis://h?keep=1", want: func(t *testing.T, c *urlConfig) {
			if c.opts.Keep != 1 {
				t.Errorf("keep=1 gave Keep %d", c.opts.Keep)
			}
		}},
		{url: "redis://h?prefix=a:&prefix=b:", want: func(t *testing.T, c *urlConfig) {
			if c.opts.KeyPrefix != "b:" {
				t.Errorf("prefix %q, want the last one given, as go-redis does", c.opts.KeyPrefix)
			}
		}},
		{url: "redis://seed1:7000?cluster=true&addr=seed2:7001&addr=seed3:7002&read_only=false", want: func(t *testing.T, c *urlConfig) {
			if c.topology != cluster || strings.Join(c.cluster.Addrs, ",") != "seed1:7000,seed2:7001,seed3:7002" {
				t.Errorf("topology %v, cluster options %+v", c.topology, c.cluster)
			}
		}},
		{url: "redis://:sentinelpw@s1:26379/3?master_name=mymaster&addr=s2:26379&prefix=x:", want: func(t *testing.T, c *urlConfig) {
			f := c.failover
			if c.topology != failover || f.MasterName != "mymaster" || strings.Join(f.SentinelAddrs, ",") != "s1:26379,s2:26379" || f.DB != 3 {
				t.Errorf("topology %v, failover options %+v", c.topology, f)
			}
			if c.opts.KeyPrefix != "x:" {
				t.Errorf("prefix %q", c.opts.KeyPrefix)
			}
		}},
		{url: "redis://h?prefix=%7Bapp%7D", err: "brace"},
		{url: "redis://h?prefix=", err: "prefix is empty"},
		{url: "redis://h?chunk_size=1MiB", err: "chunk_size"},
		{url: "redis://h?chunk_size=0", err: "chunk_size is 0"},
		{url: "redis://h?chunk_size=100", err: "chunk size 100"},
		{url: "redis://h?ttl=soon", err: "ttl"},
		{url: "redis://h?keep=two", err: "keep \"two\" is not a number"},
		{url: "redis://h?keep=0", err: "keep is 0"},
		{url: "redis://h?keep=-1", err: "Keep -1 is not between 1"},
		{url: "redis://h?keep=101", err: "Keep 101 is not between 1"},
		{url: "redis://h?ttl=-1h", err: "negative"},
		{url: "redis://h?ttl=10ms", err: "TTL"},
		{url: "redis://h?cluster=maybe", err: "cluster"},
		{url: "redis://h?cluster=true&master_name=m", err: "exclude"},
		{url: "redis://h?no_such_option=1", err: "no_such_option"},
		{url: "redis://h/zero", err: "database"},
		{url: "redis://h#frag", err: "fragment"},
		{url: "redis://user:hunter2@h?bogus=1", err: "xxxxx"}, // the password is redacted
		{url: "redis://s1?master_name=m&password=hunter2&bogus=1", err: "password=xxxxx"},
		{url: "redis://s1?master_name=m&sentinel_password=hunter2&chunk_size=x", err: "sentinel_password=xxxxx"},
	} {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parseURL(u)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseURL: %v, want an error containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			tt.want(t, c)
		})
	}
}
