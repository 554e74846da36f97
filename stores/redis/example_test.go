package redisstore_test

import (
	"context"
	"errors"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wwebstore/wwebstore/remoteauth"
	redisstore "github.com/wwebstore/wwebstore/stores/redis"
)

// The examples need a Redis server, so they are compiled but not run.

// A session engine backed by one Redis server, with archives that expire when they have not been
// saved for 30 days.
func ExampleNew() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close() // the caller's client: closing the Store leaves it open

	st, err := redisstore.New(ctx, rdb, &redisstore.Options{TTL: 30 * 24 * time.Hour})
	if err != nil {
		log.Fatal(err) // bad options, or the server did not answer PING
	}
	s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.Restore(ctx); err != nil {
		log.Fatal(err)
	}
	// Start Chromium with --user-data-dir=s.ProfileDir(), log in, then go s.Run(ctx).
}

// A Redis Cluster: every key of a session carries the session's hash tag, so one slot holds it.
func ExampleNew_cluster() {
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"},
	})
	defer rdb.Close()

	st, err := redisstore.New(ctx, rdb, &redisstore.Options{KeyPrefix: "myapp:wwebstore:"})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Save(ctx, "RemoteAuth-alice", strings.NewReader("an archive")); err != nil {
		log.Fatal(err)
	}
}

// A Sentinel-managed primary.
func ExampleNew_sentinel() {
	ctx := context.Background()
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    "mymaster",
		SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
	})
	defer rdb.Close()

	st, err := redisstore.New(ctx, rdb, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Extract(ctx, "RemoteAuth-alice", os.Stdout); err != nil {
		log.Fatal(err) // errors.Is(err, remoteauth.ErrNotFound) for a missing session
	}
}

// Opening the store from configuration. The Store owns the client it made: close it.
func Example_openStore() {
	ctx := context.Background()
	st, err := remoteauth.OpenStore(ctx, "rediss://:secret@redis.example:6380/0?prefix=myapp:&ttl=720h")
	if err != nil {
		log.Fatal(err)
	}
	defer st.(io.Closer).Close()

	ok, err := st.SessionExists(ctx, "RemoteAuth-alice")
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("session saved: %v", ok)
}

// Keeping the last three archives of each session, and restoring the one before the newest by
// hand (Session.Restore falls back by itself when the newest fails verification).
func ExampleStore_Versions() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()

	st, err := redisstore.New(ctx, rdb, &redisstore.Options{Keep: 3}) // or "?keep=3" in a URL
	if err != nil {
		log.Fatal(err)
	}
	versions, err := st.Versions(ctx, "RemoteAuth-alice") // newest first
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range versions {
		log.Printf("archive %s: %d bytes, saved %v", v.ID, v.Size, v.Saved)
	}
	if len(versions) > 1 {
		if err := st.ExtractVersion(ctx, "RemoteAuth-alice", versions[1].ID, os.Stdout); err != nil {
			log.Fatal(err) // errors.Is(err, remoteauth.ErrNotFound) if it was evicted meanwhile
		}
	}
}

// A lease by hand, as a tool that writes a session while Sessions may run would take it: the
// Save goes through the lease, so it is refused (remoteauth.ErrLeaseLost) if another process
// took the session over meanwhile. A remoteauth.Session does all this by itself.
func ExampleStore_AcquireLease() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()

	st, err := redisstore.New(ctx, rdb, nil)
	if err != nil {
		log.Fatal(err)
	}
	lease, err := st.AcquireLease(ctx, "RemoteAuth-alice", "restore-tool", 30*time.Second)
	var held *remoteauth.LeaseHeldError
	if errors.As(err, &held) {
		log.Fatalf("%s holds the session until %v", held.Owner, held.Expires)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)
	if err := lease.Save(ctx, strings.NewReader("an archive")); err != nil {
		log.Fatal(err) // errors.Is(err, remoteauth.ErrLeaseLost): another process took over
	}
}
