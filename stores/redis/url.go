package redisstore

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Schemes are the URL schemes that redisstore registers with remoteauth.RegisterScheme:
// "redis", and "rediss" for TLS.
var Schemes = []string{"redis", "rediss"}

func init() {
	for _, scheme := range Schemes {
		remoteauth.RegisterScheme(scheme, openURL)
	}
}

// Topology says which kind of go-redis client a URL asks for.
type topology int

const (
	single   topology = iota // redis.NewClient
	cluster                  // redis.NewClusterClient
	failover                 // redis.NewFailoverClient (Sentinel)
)

// urlConfig is what a URL says: a client to make, and the store's options.
type urlConfig struct {
	topology topology
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
	opts     Options
}

func (c *urlConfig) newClient() redis.UniversalClient {
	switch c.topology {
	case cluster:
		return redis.NewClusterClient(c.cluster)
	case failover:
		return redis.NewFailoverClient(c.failover)
	default:
		return redis.NewClient(c.single)
	}
}

// openURL opens a Store for a "redis" or "rediss" URL: see the package documentation. The Store
// owns the client it makes, and closes it in Close.
func openURL(ctx context.Context, u *url.URL) (remoteauth.Store, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	rdb := cfg.newClient()
	st, err := New(ctx, rdb, &cfg.opts)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	st.owned = true
	return st, nil
}

// parseURL splits the store's own query parameters from go-redis's and parses both.
func parseURL(u *url.URL) (*urlConfig, error) {
	fail := func(format string, args ...any) (*urlConfig, error) {
		return nil, fmt.Errorf("redisstore: URL %q: %s", redact(u), fmt.Sprintf(format, args...))
	}
	if u.Fragment != "" {
		return fail("fragments are not supported")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("query: %v", err)
	}
	cfg := &urlConfig{}
	// take removes a parameter from q and returns its last value, as go-redis does.
	take := func(name string) (string, bool) {
		vs, ok := q[name]
		delete(q, name)
		if !ok || len(vs) == 0 {
			return "", false
		}
		return vs[len(vs)-1], true
	}
	if v, ok := take("prefix"); ok {
		if v == "" {
			return fail("prefix is empty (leave it out for the default %q)", DefaultKeyPrefix)
		}
		cfg.opts.KeyPrefix = v
	}
	if v, ok := take("chunk_size"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fail("chunk_size %q is not a number of bytes", v)
		}
		if n == 0 {
			return fail("chunk_size is 0 (leave it out for the default %d)", DefaultChunkSize)
		}
		cfg.opts.ChunkSize = n
	}
	if v, ok := take("ttl"); ok {
		d, err := parseDuration(v)
		if err != nil {
			return fail("ttl %q: %v", v, err)
		}
		cfg.opts.TTL = d
	}
	if v, ok := take("keep"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fail("keep %q is not a number of archives (1 or more)", v)
		}
		if n == 0 {
			return fail("keep is 0 (leave it out for the default %d, or keep=1 for no history)", remoteauth.DefaultKeep)
		}
		cfg.opts.Keep = n
	}
	if err := cfg.opts.validate(); err != nil {
		return fail("%v", strings.TrimPrefix(err.Error(), "redisstore: "))
	}
	isCluster := false
	if v, ok := take("cluster"); ok {
		if isCluster, err = strconv.ParseBool(v); err != nil {
			return fail("cluster %q is not a boolean", v)
		}
	}
	_, isFailover := q["master_name"]

	rest := *u
	rest.RawQuery = q.Encode()
	raw := rest.String()
	switch {
	case isCluster && isFailover:
		return fail("cluster=true and master_name exclude each other")
	case isCluster:
		cfg.topology = cluster
		cfg.cluster, err = redis.ParseClusterURL(raw)
	case isFailover:
		cfg.topology = failover
		cfg.failover, err = redis.ParseFailoverURL(raw)
	default:
		cfg.topology = single
		cfg.single, err = redis.ParseURL(raw)
	}
	if err != nil {
		return fail("%v", err)
	}
	return cfg, nil
}

// parseDuration parses a Go duration ("720h"), or a plain number of seconds, as go-redis does for
// its own durations.
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// redact returns u as a string without its passwords: the user info's, and those of the query
// parameters password and sentinel_password.
func redact(u *url.URL) string {
	r := *u
	if q, err := url.ParseQuery(r.RawQuery); err == nil {
		for _, name := range []string{"password", "sentinel_password"} {
			if _, ok := q[name]; ok {
				q[name] = []string{"xxxxx"}
			}
		}
		r.RawQuery = q.Encode()
	} else {
		r.RawQuery = "…"
	}
	return r.Redacted()
}
