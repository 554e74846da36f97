package mongostore

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/internal/urlopt"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// Schemes are the URL schemes that mongostore registers with remoteauth.RegisterScheme: the
// driver's connection string schemes.
var Schemes = []string{"mongodb", "mongodb+srv"}

func init() {
	for _, scheme := range Schemes {
		remoteauth.RegisterScheme(scheme, openURL)
	}
}

// URL query parameters that belong to the store; they are removed before the driver parses the
// connection string. Every other parameter is the driver's (authSource, replicaSet, tls, …).
const (
	paramBucket    = "bucket"     // bucket name pattern; "{session}" stands for the session name
	paramChunkSize = "chunk_size" // bytes, or a number of KiB or MiB: "255KiB"
	paramGrace     = "grace"      // a Go duration: "1h", "10m"
	paramRetired   = "retired_grace"
	paramKeep      = "keep" // archives kept per session, 1 or more
)

// BucketPattern returns an Options.BucketName that replaces every "{session}" in pattern with
// the session name: BucketPattern("whatsapp-{session}") is DefaultBucketName. A pattern without
// "{session}" puts every session in one bucket, where files "<session>.zip" tell them apart.
func BucketPattern(pattern string) func(session string) string {
	return func(session string) string { return strings.ReplaceAll(pattern, "{session}", session) }
}

// openURL opens a Store that owns a new client, for a mongodb:// or mongodb+srv:// URL whose
// path names the database:
//
//	mongodb://[user:password@]host[:port][,host…]/database[?bucket=…&chunk_size=…&grace=…&retired_grace=…&keep=…&driver options]
func openURL(ctx context.Context, u *url.URL) (remoteauth.Store, error) {
	uri, db, opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("mongostore: %w", err)
	}
	s, err := New(ctx, client.Database(db), opts)
	if err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	s.client = client
	return s, nil
}

// parseURL splits a store URL into the driver's connection string (without the store's
// parameters), the database name and the Options.
func parseURL(u *url.URL) (uri, db string, opts *Options, err error) {
	if u.Opaque != "" {
		return "", "", nil, fmt.Errorf("mongostore: URL %s:%s is not of the form %s://host/database", u.Scheme, u.Opaque, u.Scheme)
	}
	db = strings.TrimPrefix(u.Path, "/")
	if db == "" {
		return "", "", nil, fmt.Errorf("mongostore: URL %s has no database: write it as the path, as in %s://host/mydb", u.Redacted(), u.Scheme)
	}
	if strings.ContainsAny(db, "/\\. \"$\x00") {
		return "", "", nil, fmt.Errorf("mongostore: URL database name %q may not hold / \\ . space \" $ or NUL", db)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", "", nil, fmt.Errorf("mongostore: URL query: %w", err)
	}
	opts = &Options{}
	take := func(name string) (string, bool, error) {
		vs, ok := q[name]
		if !ok {
			return "", false, nil
		}
		delete(q, name)
		if len(vs) != 1 || vs[0] == "" {
			return "", false, fmt.Errorf("mongostore: URL parameter %s must be given once, not empty", name)
		}
		return vs[0], true, nil
	}
	if v, ok, err := take(paramBucket); err != nil {
		return "", "", nil, err
	} else if ok {
		opts.BucketName = BucketPattern(v)
	}
	if v, ok, err := take(paramChunkSize); err != nil {
		return "", "", nil, err
	} else if ok {
		if opts.ChunkSize, err = urlopt.ParseSize(v, 1, MaxChunkSize); err != nil {
			return "", "", nil, fmt.Errorf("mongostore: URL parameter %s=%q: %w", paramChunkSize, v, err)
		}
	}
	if v, ok, err := take(paramKeep); err != nil {
		return "", "", nil, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "", "", nil, fmt.Errorf("mongostore: URL parameter %s=%q: want the number of archives kept per session, 1 or more (1 keeps no history)", paramKeep, v)
		}
		opts.Keep = n
	}
	for _, p := range []struct {
		name string
		dst  *time.Duration
	}{{paramGrace, &opts.GracePeriod}, {paramRetired, &opts.RetiredGracePeriod}} {
		v, ok, err := take(p.name)
		if err != nil {
			return "", "", nil, err
		}
		if !ok {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return "", "", nil, fmt.Errorf("mongostore: URL parameter %s=%q: want a positive duration such as 1h", p.name, v)
		}
		*p.dst = d
	}
	rest := *u
	rest.RawQuery = q.Encode()
	return rest.String(), db, opts, nil
}
