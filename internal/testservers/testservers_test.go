package testservers_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/internal/testservers"
)

func TestMain(m *testing.M) { testservers.Main(m) }

// A probe reaches a Server's namespace with the engine's own driver, from what the Server says
// (its URL and Env), as a store opened from the URL would.
type probe struct {
	// put writes an item named name into the namespace.
	put func(t *testing.T, srv testservers.Server, name string)
	// items returns the names of the items in the namespace.
	items func(t *testing.T, srv testservers.Server) []string
	// exists reports whether the namespace itself is still there (for a key prefix, whether a
	// key is under it).
	exists func(t *testing.T, srv testservers.Server) bool
}

var probes = map[string]probe{
	"redis":    redisProbe,
	"postgres": postgresProbe,
	"mongo":    mongoProbe,
	"s3":       s3Probe,
}

// TestServers checks, for each engine, that the server answers, that two Servers of one test
// have namespaces that do not see each other's items, and that a Server's namespace is gone once
// its test has ended, while the other one's is still there.
func TestServers(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(testing.TB) testservers.Server
	}{
		{"redis", testservers.Redis},
		{"postgres", testservers.Postgres},
		{"mongo", testservers.Mongo},
		{"s3", testservers.S3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := probes[tt.name]
			kept := tt.start(t)
			p.put(t, kept, "kept")
			var gone testservers.Server
			t.Run("inner", func(t *testing.T) {
				gone = tt.start(t)
				if gone.Name != tt.name {
					t.Errorf("Name = %q, want %q", gone.Name, tt.name)
				}
				if gone.URL == kept.URL {
					t.Fatalf("two Servers have the same URL %s", gone.URL)
				}
				p.put(t, gone, "one")
				p.put(t, gone, "two")
				if got := strings.Join(p.items(t, gone), ","); got != "one,two" {
					t.Errorf("items in the new namespace: %q, want one,two", got)
				}
				if got := strings.Join(p.items(t, kept), ","); got != "kept" {
					t.Errorf("items in the other namespace: %q, want kept", got)
				}
			})
			if p.exists(t, gone) {
				t.Errorf("the namespace of %s is still there after its test ended", gone.URL)
			}
			if !p.exists(t, kept) {
				t.Errorf("the namespace of %s, whose test runs on, is gone", kept.URL)
			}
		})
	}
}

// TestAll checks that All returns the four servers in order, and that Setenv sets their
// environment.
func TestAll(t *testing.T) {
	all := testservers.All(t)
	var names []string
	for _, srv := range all {
		names = append(names, srv.Name)
		if srv.Env == nil {
			t.Errorf("%s: Env is nil, want an empty map", srv.Name)
		}
	}
	if got := strings.Join(names, ","); got != "redis,postgres,mongo,s3" {
		t.Fatalf("All: %s", got)
	}
	s3srv := all[3]
	if s3srv.Env["AWS_ACCESS_KEY_ID"] == "" || s3srv.Env["AWS_SECRET_ACCESS_KEY"] == "" {
		t.Errorf("the S3 Server's Env has no credentials: %v", s3srv.Env)
	}
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE"} {
		if v, ok := s3srv.Env[k]; !ok || v != "" {
			t.Errorf("the S3 Server's Env does not empty %s", k)
		}
	}
	t.Setenv("AWS_SESSION_TOKEN", "a developer's token")
	t.Setenv("AWS_PROFILE", "a developer's profile")
	s3srv.Setenv(t)
	for k, v := range s3srv.Env {
		if got := os.Getenv(k); got != v {
			t.Errorf("after Setenv, %s = %q, want %q", k, got, v)
		}
	}
}

func TestImage(t *testing.T) {
	t.Setenv("WWEBSTORE_REDIS_IMAGE", "")
	if got := testservers.Image("redis"); got != "redis:7" {
		t.Errorf("Image(redis) without WWEBSTORE_REDIS_IMAGE = %q, want redis:7", got)
	}
	t.Setenv("WWEBSTORE_REDIS_IMAGE", "localhost/my-redis:7")
	if got := testservers.Image("redis"); got != "localhost/my-redis:7" {
		t.Errorf("Image(redis) = %q, want WWEBSTORE_REDIS_IMAGE's", got)
	}
}

// parse returns srv.URL parsed, and its query parameter param, removed from it.
func parse(t *testing.T, srv testservers.Server, param string) (*url.URL, string) {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	v := q.Get(param)
	q.Del(param)
	u.RawQuery = q.Encode()
	return u, v
}

func redisClient(t *testing.T, srv testservers.Server) (*redis.Client, string) {
	t.Helper()
	u, prefix := parse(t, srv, "prefix")
	if prefix == "" {
		t.Fatalf("%s has no prefix", srv.URL)
	}
	o, err := redis.ParseURL(u.String())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return rdb, prefix
}

func redisKeys(t *testing.T, srv testservers.Server) []string {
	t.Helper()
	rdb, prefix := redisClient(t, srv)
	keys, err := rdb.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		keys[i] = strings.TrimPrefix(k, prefix)
	}
	return sorted(keys)
}

var redisProbe = probe{
	put: func(t *testing.T, srv testservers.Server, name string) {
		rdb, prefix := redisClient(t, srv)
		if err := rdb.Set(t.Context(), prefix+name, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	},
	items: redisKeys,
	// A key prefix exists as long as a key is under it.
	exists: func(t *testing.T, srv testservers.Server) bool { return len(redisKeys(t, srv)) > 0 },
}

func postgresConn(t *testing.T, srv testservers.Server) (*pgx.Conn, string) {
	t.Helper()
	u, schema := parse(t, srv, "schema")
	if schema == "" {
		t.Fatalf("%s has no schema", srv.URL)
	}
	conn, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, schema
}

var postgresProbe = probe{
	put: func(t *testing.T, srv testservers.Server, name string) {
		conn, schema := postgresConn(t, srv)
		if _, err := conn.Exec(t.Context(), "CREATE TABLE "+pgx.Identifier{schema, name}.Sanitize()+" (x int)"); err != nil {
			t.Fatal(err)
		}
	},
	items: func(t *testing.T, srv testservers.Server) []string {
		conn, schema := postgresConn(t, srv)
		rows, _ := conn.Query(t.Context(), "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return sorted(names)
	},
	exists: func(t *testing.T, srv testservers.Server) bool {
		conn, schema := postgresConn(t, srv)
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	},
}

func mongoDB(t *testing.T, srv testservers.Server) *mongo.Database {
	t.Helper()
	u, _ := parse(t, srv, "")
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		t.Fatalf("%s has no database", srv.URL)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c.Database(db)
}

var mongoProbe = probe{
	put: func(t *testing.T, srv testservers.Server, name string) {
		if err := mongoDB(t, srv).CreateCollection(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	},
	items: func(t *testing.T, srv testservers.Server) []string {
		names, err := mongoDB(t, srv).ListCollectionNames(t.Context(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return sorted(names)
	},
	exists: func(t *testing.T, srv testservers.Server) bool {
		db := mongoDB(t, srv)
		names, err := db.Client().ListDatabaseNames(t.Context(), bson.D{{Key: "name", Value: db.Name()}})
		if err != nil {
			t.Fatal(err)
		}
		return len(names) > 0
	},
}

// s3Client returns a client made only from what srv says: its URL's endpoint and region, its
// Env's credentials; and the bucket and prefix of its URL.
func s3Client(t *testing.T, srv testservers.Server) (c *s3.Client, bucket, prefix string) {
	t.Helper()
	u, _ := parse(t, srv, "")
	q := u.Query()
	if q.Get("path_style") != "true" {
		t.Errorf("%s: path_style is not true", srv.URL)
	}
	c = s3.New(s3.Options{
		Region:       q.Get("region"),
		BaseEndpoint: aws.String(q.Get("endpoint")),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.Env["AWS_ACCESS_KEY_ID"], srv.Env["AWS_SECRET_ACCESS_KEY"], ""),
	})
	prefix = strings.TrimPrefix(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return c, u.Host, prefix
}

func s3Objects(t *testing.T, srv testservers.Server) []string {
	t.Helper()
	c, bucket, prefix := s3Client(t, srv)
	out, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range out.Contents {
		names = append(names, strings.TrimPrefix(aws.ToString(o.Key), prefix))
	}
	return sorted(names)
}

var s3Probe = probe{
	put: func(t *testing.T, srv testservers.Server, name string) {
		c, bucket, prefix := s3Client(t, srv)
		if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(prefix + name), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	},
	items: s3Objects,
	exists: func(t *testing.T, srv testservers.Server) bool {
		c, bucket, prefix := s3Client(t, srv)
		if prefix != "" { // a prefix in WWEBSTORE_S3_BUCKET: emptied, not removed
			return len(s3Objects(t, srv)) > 0
		}
		_, err := c.HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: &bucket})
		var nf *types.NotFound
		if errors.As(err, &nf) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	},
}

// sorted sorts names in place and returns them.
func sorted(names []string) []string {
	slices.Sort(names)
	return names
}
