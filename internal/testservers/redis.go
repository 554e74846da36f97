package testservers

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

var redisEngine = register(&engine{
	name:         "redis",
	title:        "Redis",
	envURL:       "WWEBSTORE_REDIS_URL",
	envImage:     "WWEBSTORE_REDIS_IMAGE",
	defaultImage: "redis:7",
	exampleURL:   "redis://127.0.0.1:6379/0",
	start: func(ctx context.Context, image string) (testcontainers.Container, string, error) {
		ctr, err := tcredis.Run(ctx, image)
		if ctr == nil { // a typed nil in the interface would look like a container
			return nil, "", err
		}
		if err != nil {
			return ctr, "", err
		}
		u, err := ctr.ConnectionString(ctx)
		return ctr, u, err
	},
})

// RedisURL returns the URL of the Redis server that the tests of this binary share, without a
// namespace: WWEBSTORE_REDIS_URL, or redis://HOST:PORT of the shared container, started on the
// first call. go-redis's ParseURL accepts it. Without a server, the test is unavailable.
func RedisURL(t testing.TB) string {
	t.Helper()
	return redisEngine.serverURL(t)
}

// Redis returns the shared Redis server with the key prefix "wwebstore-test:<id>:" of its own
// (URL parameter prefix); when the test ends, the keys under the prefix are deleted.
func Redis(t testing.TB) Server {
	t.Helper()
	base := RedisURL(t)
	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("testservers: %s: %v; want one server's URL, as redis://127.0.0.1:6379/0", redisEngine.source(), err)
	}
	prefix := "wwebstore-test:" + randomID() + ":"
	u, err := withQuery(base, "prefix", prefix)
	if err != nil {
		t.Fatalf("testservers: %s: %v", redisEngine.source(), err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := opContext()
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		t.Fatalf("testservers: %s at %s does not answer PING: %v; start it, or unset %s", redisEngine.source(), opts.Addr, err, redisEngine.envURL)
	}
	t.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := opContext()
		defer cancel()
		if err := deleteKeys(ctx, rdb, prefix); err != nil {
			t.Errorf("testservers: removing the Redis keys under %q on %s: %v", prefix, opts.Addr, err)
		}
	})
	return Server{Name: redisEngine.name, URL: u, Env: map[string]string{}}
}

// deleteKeys deletes the keys that start with prefix, which holds no glob character.
func deleteKeys(ctx context.Context, rdb *redis.Client, prefix string) error {
	var keys []string
	it := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("SCAN: %w", err)
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if err := rdb.Del(ctx, keys[:n]...).Err(); err != nil {
			return fmt.Errorf("DEL: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}
