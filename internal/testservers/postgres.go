package testservers

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the wait strategy
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"
)

var postgresEngine = register(&engine{
	name:         "postgres",
	title:        "PostgreSQL",
	envURL:       "WWEBSTORE_POSTGRES_URL",
	envImage:     "WWEBSTORE_POSTGRES_IMAGE",
	defaultImage: "postgres:17",
	exampleURL:   "postgres://user:password@127.0.0.1:5432/db",
	start: func(ctx context.Context, image string) (testcontainers.Container, string, error) {
		// A query from the host is the one readiness check that works both for the official
		// image (which restarts once after its init scripts, listening on TCP only the second
		// time) and for locally built images with another entrypoint and other log lines.
		ready := wait.ForSQL("5432/tcp", "pgx", func(host string, port network.Port) string {
			return fmt.Sprintf("postgres://postgres:postgres@%s/postgres?sslmode=disable&connect_timeout=5", net.JoinHostPort(host, port.Port()))
		}).WithStartupTimeout(startTimeout).WithPollInterval(200 * time.Millisecond)
		ctr, err := tcpostgres.Run(ctx, image, testcontainers.WithWaitStrategy(ready))
		if ctr == nil { // a typed nil in the interface would look like a container
			return nil, "", err
		}
		if err != nil {
			return ctr, "", err
		}
		u, err := ctr.ConnectionString(ctx, "sslmode=disable")
		return ctr, u, err
	},
})

// PostgresURL returns the connection URL of the PostgreSQL server that the tests of this binary
// share, without a namespace: WWEBSTORE_POSTGRES_URL, or that of the shared container (user and
// password postgres, database postgres, sslmode=disable), started on the first call. pgx accepts
// it. Without a server, the test is unavailable.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return postgresEngine.serverURL(t)
}

// Postgres returns the shared PostgreSQL server with a schema of its own, wwebstore_test_<id>
// (URL parameter schema), created here; when the test ends, DROP SCHEMA … CASCADE removes it
// with everything in it.
func Postgres(t testing.TB) Server {
	t.Helper()
	base := PostgresURL(t)
	if u, err := url.Parse(base); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testservers: %s is not a postgres:// URL, which the store's URL needs; write it as %s", postgresEngine.source(), postgresEngine.exampleURL)
	}
	schema := "wwebstore_test_" + randomID()
	u, err := withQuery(base, "schema", schema)
	if err != nil {
		t.Fatalf("testservers: %s: %v", postgresEngine.source(), err)
	}
	exec := func(sql string) error {
		ctx, cancel := opContext()
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ident := pgx.Identifier{schema}.Sanitize()
	if err := exec("CREATE SCHEMA " + ident); err != nil {
		t.Fatalf("testservers: creating schema %s on %s: %v (the role needs the CREATE privilege on the database)", schema, postgresEngine.source(), err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA IF EXISTS " + ident + " CASCADE"); err != nil {
			t.Errorf("testservers: removing schema %s on %s: %v", schema, postgresEngine.source(), err)
		}
	})
	return Server{Name: postgresEngine.name, URL: u, Env: map[string]string{}}
}
