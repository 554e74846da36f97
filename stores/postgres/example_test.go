package postgresstore_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/remoteauth"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
)

// The examples need a server, so they are compiled but not run.

func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // postgres://user:password@host/db
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	st, err := postgresstore.New(ctx, pool, nil) // creates wwebstore_sessions, …_chunks and …_versions
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Save(ctx, "RemoteAuth-alice", strings.NewReader("zip bytes")); err != nil {
		log.Fatal(err)
	}
	var b strings.Builder
	if err := st.Extract(ctx, "RemoteAuth-alice", &b); err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.String())
}

// OpenStore opens a store, and its own pool, from a URL once the package is imported. The
// store's parameters (here table and chunk_size) are taken out of the URL; pgx gets the rest.
func Example_openStore() {
	ctx := context.Background()
	st, err := remoteauth.OpenStore(ctx, "postgres://wwebstore:secret@db.internal:5432/app?sslmode=require&table=sessions&chunk_size=4MiB")
	if err != nil {
		log.Fatal(err)
	}
	defer st.(io.Closer).Close() // the store owns its pool

	ok, err := st.SessionExists(ctx, "RemoteAuth-alice")
	fmt.Println(ok, err)
}

// Through PgBouncer in transaction pooling mode, nothing needs changing: the store's queries use
// no named prepared statement and no session state. Tables made ahead of time by a migration
// (from CreateTablesSQL) let the store run with a role that cannot create tables.
func ExampleNew_pgBouncer() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@pgbouncer:6432/app") // pool_mode = transaction
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	st, err := postgresstore.New(ctx, pool, &postgresstore.Options{
		Schema:           "wwebstore",
		Table:            "sessions", // and "sessions_chunks"
		SkipCreateTables: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(st.CreateTablesSQL()) // what the migration runs
	_ = remoteauth.Store(st)
}

// A Session backs a browser profile up to PostgreSQL.
func Example_session() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := postgresstore.New(ctx, pool, nil)
	if err != nil {
		log.Fatal(err)
	}
	s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := s.Restore(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("found:", res.Found)
}

// A store keeps the previous archives of each session (Options.Keep, 2 by default), so that a
// Session's Restore can fall back to an older archive when the newest is damaged. Versions lists
// them, newest first; ExtractVersion reads one.
func ExampleStore_Versions() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := postgresstore.New(ctx, pool, &postgresstore.Options{Keep: 3}) // the current archive and two before it
	if err != nil {
		log.Fatal(err)
	}
	versions, err := st.Versions(ctx, "RemoteAuth-alice")
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range versions {
		fmt.Println(v.ID, v.Size, v.Saved)
	}
	if len(versions) > 1 {
		var previous strings.Builder
		if err := st.ExtractVersion(ctx, "RemoteAuth-alice", versions[1].ID, &previous); err != nil {
			log.Fatal(err)
		}
	}
}
