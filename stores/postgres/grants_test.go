package postgresstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
	"github.com/wwebstore/wwebstore/storetest"
)

// tableGrants are the README's grants on the store's tables (section Permissions), for a role
// that uses tables made beforehand: the session table is upserted and deleted from; the chunk
// and version tables are inserted into (COPY, INSERT … SELECT), read and deleted from, never
// updated but for a fenced Save's renumbering of its own chunks; the lease table is inserted
// into, updated and read (SELECT … FOR SHARE needs UPDATE), never deleted from.
var tableGrants = map[string]string{
	"sessions": "SELECT, INSERT, UPDATE, DELETE",
	"chunks":   "SELECT, INSERT, UPDATE, DELETE",
	"versions": "SELECT, INSERT, DELETE",
	"leases":   "SELECT, INSERT, UPDATE",
}

// grantedStore is what a test needs to open the store as a role of its own.
type grantedStore struct {
	url    string        // the server's URL with the role's credentials and the schema
	admin  *pgxpool.Pool // a pool of the server's administrative role
	schema string        // the schema of the test
	ident  string        // the quoted schema
	role   string        // the quoted role
}

// newRole makes a schema of its own (testservers.Postgres) and a LOGIN role with no privilege
// but PUBLIC's; the role is dropped, with what it owns, when the test ends.
func newRole(t *testing.T) *grantedStore {
	t.Helper()
	srv := testservers.Postgres(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("schema")
	if schema == "" {
		t.Fatalf("the test server's URL %s has no schema", srv.URL)
	}
	admin := newPool(t, serverURL(t))
	name := "wwebstore_grants_" + strings.ToLower(rand.Text()[:12])
	password := rand.Text()
	g := &grantedStore{admin: admin, ident: pgx.Identifier{schema}.Sanitize(), role: pgx.Identifier{name}.Sanitize(), schema: schema}
	g.exec(t, "CREATE ROLE "+g.role+" LOGIN PASSWORD '"+password+"'")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, q := range []string{"DROP OWNED BY " + g.role, "DROP ROLE " + g.role} {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u.User = url.UserPassword(name, password)
	g.url = u.String()
	return g
}

// exec runs q as the administrative role.
func (g *grantedStore) exec(t *testing.T, q string) {
	t.Helper()
	if _, err := g.admin.Exec(t.Context(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// prepareTables creates the store's tables as the administrative role, with the SQL of
// CreateTablesSQL (a migration), and grants the role USAGE on the schema and grants (by the keys
// of tableGrants) on the tables.
func (g *grantedStore) prepareTables(t *testing.T, grants map[string]string) {
	t.Helper()
	st, err := postgresstore.New(t.Context(), g.admin, &postgresstore.Options{Schema: g.schema, SkipCreateTables: true})
	if err != nil {
		t.Fatal(err)
	}
	g.exec(t, st.CreateTablesSQL())
	sessions, chunks, versions := st.TableNames()
	g.exec(t, "GRANT USAGE ON SCHEMA "+g.ident+" TO "+g.role)
	for table, name := range map[string]string{"sessions": sessions, "chunks": chunks, "versions": versions, "leases": st.LeaseTableName()} {
		if p := grants[table]; p != "" {
			g.exec(t, "GRANT "+p+" ON "+name+" TO "+g.role)
		}
	}
}

// open opens the store through the URL opener as the role; New creates or checks the tables
// (create_tables is not turned off).
func (g *grantedStore) open(t *testing.T) (remoteauth.Store, error) {
	t.Helper()
	st, err := remoteauth.OpenStore(t.Context(), g.url)
	if err == nil {
		t.Cleanup(func() { st.(*postgresstore.Store).Close() })
	}
	return st, err
}

// TestGrants runs the conformance suite (History and List included) and a Session's backup,
// restore and logout through roles that have nothing but the README's grants:
//   - MigratedTables: tables made beforehand from CreateTablesSQL by another role, USAGE on the
//     schema and tableGrants; New still runs its check (advisory lock, catalog reads), which
//     needs nothing more;
//   - OwnTables: USAGE and CREATE on the schema, where New creates the tables, which the role
//     then owns.
func TestGrants(t *testing.T) {
	migrated := func(t *testing.T) remoteauth.Store {
		g := newRole(t)
		g.prepareTables(t, tableGrants)
		st, err := g.open(t)
		if err != nil {
			t.Fatalf("OpenStore as a role with USAGE and the table grants: %v", err)
		}
		return st
	}
	t.Run("MigratedTables", func(t *testing.T) {
		storetest.Run(t, migrated)
	})
	t.Run("MigratedTablesSession", func(t *testing.T) {
		grantsRoundTrip(t, migrated(t))
	})
	t.Run("OwnTables", func(t *testing.T) {
		g := newRole(t)
		g.exec(t, "GRANT USAGE, CREATE ON SCHEMA "+g.ident+" TO "+g.role)
		st, err := g.open(t)
		if err != nil {
			t.Fatalf("OpenStore as a role with USAGE and CREATE on the schema: %v", err)
		}
		grantsRoundTrip(t, st)
	})
	t.Run("README", func(t *testing.T) {
		// The README's grants are the ones tested here.
		readme, err := os.ReadFile("README.md")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"GRANT USAGE ON SCHEMA app TO wwebstore;",
			"GRANT " + tableGrants["sessions"] + " ON app.wwebstore_sessions TO wwebstore;",
			"GRANT " + tableGrants["chunks"] + " ON app.wwebstore_sessions_chunks TO wwebstore;",
			"GRANT " + tableGrants["versions"] + " ON app.wwebstore_sessions_versions TO wwebstore;",
			"GRANT " + tableGrants["leases"] + " ON app.wwebstore_sessions_leases TO wwebstore;",
			"GRANT USAGE, CREATE ON SCHEMA app TO wwebstore;",
		} {
			if !strings.Contains(string(readme), want+"\n") {
				t.Errorf("README.md does not hold the grant that this test gives: %s", want)
			}
		}
	})
}

// TestGrantsMissing checks that a role without one of the grants fails with the store's error
// wrapping PostgreSQL's "permission denied" (SQLSTATE 42501) naming the object.
func TestGrantsMissing(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, g *grantedStore)
		op      func(t *testing.T, g *grantedStore) error
		want    string
	}{
		{
			name:    "NoCreateOnSchema",
			prepare: func(t *testing.T, g *grantedStore) { g.exec(t, "GRANT USAGE ON SCHEMA "+g.ident+" TO "+g.role) },
			op: func(t *testing.T, g *grantedStore) error {
				_, err := g.open(t)
				return err
			},
			want: "permission denied for schema",
		},
		{
			name: "NoDeleteOnChunks",
			prepare: func(t *testing.T, g *grantedStore) {
				g.prepareTables(t, map[string]string{"sessions": tableGrants["sessions"], "chunks": "SELECT, INSERT, UPDATE", "versions": tableGrants["versions"], "leases": tableGrants["leases"]})
			},
			op: func(t *testing.T, g *grantedStore) error {
				st, err := g.open(t)
				if err != nil {
					t.Fatalf("OpenStore: %v; want it to work without DELETE on the chunk table", err)
				}
				// Each Save deletes the chunks of the archives it no longer keeps.
				return st.Save(t.Context(), "alice", strings.NewReader("archive"))
			},
			want: "permission denied for table wwebstore_sessions_chunks",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newRole(t)
			tt.prepare(t, g)
			err := tt.op(t, g)
			t.Logf("%s: %v", tt.name, err)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Fatalf("error %v; want one wrapping a *pgconn.PgError with SQLSTATE 42501", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "postgresstore") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q; want the store's error with %q", msg, tt.want)
			}
		})
	}
}

// grantsRoundTrip backs a profile up twice through a remoteauth.Session over st (so the second
// backup keeps the first archive), restores it into another directory, checks the files, lists
// the session and its versions, and logs out (Delete).
func grantsRoundTrip(t *testing.T, st remoteauth.Store) {
	t.Helper()
	newSession := func() *remoteauth.Session {
		s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "grants", DataPath: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	files := map[string]string{
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log": string(bytes.Repeat([]byte("login "), 20<<10)),
	}
	src := newSession()
	for i, local := range []string{"first", "second"} {
		files["Default/Local Storage/leveldb/000003.log"] = local
		filetree.Write(t, src.ProfileDir(), files)
		if _, err := src.Backup(t.Context()); err != nil {
			t.Fatalf("Backup %d: %v", i+1, err)
		}
	}
	// Abandon releases src's lease (the store is a Leaser), so that dst need not wait for it.
	if err := src.Abandon(t.Context()); err != nil {
		t.Fatalf("Abandon: %v", err)
	}
	if v, err := st.(remoteauth.History).Versions(t.Context(), src.Name()); err != nil || len(v) != 2 {
		t.Fatalf("Versions = %v, %v; want 2 archives", v, err)
	}
	if l, err := st.(remoteauth.Lister).List(t.Context()); err != nil || len(l) != 1 || l[0].Name != src.Name() {
		t.Fatalf("List = %v, %v; want %s alone", l, err, src.Name())
	}
	dst := newSession()
	res, err := dst.Restore(t.Context())
	if err != nil || !res.Found || res.FellBack {
		t.Fatalf("Restore = %+v, %v; want the newest archive", res, err)
	}
	if got := filetree.Read(t, dst.ProfileDir()); !maps.Equal(got, files) {
		t.Errorf("restored %d files, not the %d backed up", len(got), len(files))
	}
	if err := dst.Delete(t.Context()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if ok, err := st.SessionExists(t.Context(), src.Name()); err != nil || ok {
		t.Errorf("SessionExists after Delete = %v, %v; want false, nil", ok, err)
	}
}
