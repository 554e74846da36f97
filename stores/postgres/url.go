package postgresstore

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/internal/urlopt"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// The URL schemes that postgresstore registers with remoteauth.RegisterScheme, as libpq and
// pgx accept both.
const (
	Scheme      = "postgres"
	SchemeAlias = "postgresql"
)

func init() {
	remoteauth.RegisterScheme(Scheme, openURL)
	remoteauth.RegisterScheme(SchemeAlias, openURL)
}

// URL query parameters that belong to the store, not to pgx. They are removed from the URL
// before pgx parses it: pgx would send an unknown one to the server as a run-time parameter,
// which refuses the connection.
const (
	paramTable        = "table"
	paramChunkTable   = "chunk_table"
	paramVersionTable = "version_table"
	paramLeaseTable   = "lease_table"
	paramKeep         = "keep"
	paramSchema       = "schema"
	paramChunkSize    = "chunk_size"
	paramCreateTables = "create_tables"
	paramUsePoolMode  = "use_pool_exec_mode"
)

// openURL opens a Store that owns a new pool, for a "postgres" or "postgresql" URL: see the
// package documentation.
func openURL(ctx context.Context, u *url.URL) (remoteauth.Store, error) {
	dsn, opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgresstore: %w", err) // pgx's error hides the password
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgresstore: %w", err)
	}
	s, err := New(ctx, pool, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownsPool = true
	return s, nil
}

// parseURL splits a store URL into the connection string for pgx, without the store's query
// parameters, and the Options that those parameters set.
func parseURL(u *url.URL) (dsn string, opts *Options, err error) {
	if u.Opaque != "" {
		return "", nil, fmt.Errorf("postgresstore: URL %s:%s is not of the form %s://[user[:password]@][host][:port][/dbname][?param=value&…]", u.Scheme, u.Opaque, u.Scheme)
	}
	if u.Fragment != "" {
		return "", nil, fmt.Errorf("postgresstore: a URL fragment (#%s) means nothing to the store", u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", nil, fmt.Errorf("postgresstore: URL query: %w", err)
	}
	opts = &Options{}
	take := func(name string) (string, bool, error) {
		vs, ok := q[name]
		if !ok {
			return "", false, nil
		}
		delete(q, name)
		if len(vs) != 1 {
			return "", false, fmt.Errorf("postgresstore: URL parameter %s is given %d times", name, len(vs))
		}
		return vs[0], true, nil
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{paramTable, &opts.Table}, {paramChunkTable, &opts.ChunkTable}, {paramVersionTable, &opts.VersionTable}, {paramLeaseTable, &opts.LeaseTable}, {paramSchema, &opts.Schema}} {
		v, ok, err := take(p.name)
		if err != nil {
			return "", nil, err
		}
		if ok && v == "" {
			return "", nil, fmt.Errorf("postgresstore: URL parameter %s is empty", p.name)
		}
		*p.dst = v
	}
	if v, ok, err := take(paramChunkSize); err != nil {
		return "", nil, err
	} else if ok {
		if opts.ChunkSize, err = urlopt.ParseSize(v, MinChunkSize, MaxChunkSize); err != nil {
			return "", nil, fmt.Errorf("postgresstore: URL parameter %s=%q: %w", paramChunkSize, v, err)
		}
	}
	if v, ok, err := take(paramKeep); err != nil {
		return "", nil, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "", nil, fmt.Errorf("postgresstore: URL parameter %s=%q: want the number of archives kept per session, 1 or more (1 keeps no history)", paramKeep, v)
		}
		opts.Keep = n
	}
	for _, p := range []struct {
		name   string
		dst    *bool
		invert bool
	}{{paramCreateTables, &opts.SkipCreateTables, true}, {paramUsePoolMode, &opts.UsePoolExecMode, false}} {
		v, ok, err := take(p.name)
		if err != nil {
			return "", nil, err
		}
		if !ok {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", nil, fmt.Errorf("postgresstore: URL parameter %s=%q: want true or false", p.name, v)
		}
		*p.dst = b != p.invert
	}
	rest := *u
	rest.RawQuery = q.Encode()
	return rest.String(), opts, nil
}
