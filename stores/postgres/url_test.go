package postgresstore_test

import (
	"bytes"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
)

// mustQuery returns the query parameters of rawURL.
func mustQuery(t *testing.T, rawURL string) url.Values {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// withParams returns rawURL with the query parameters of extra added.
func withParams(t *testing.T, rawURL, extra string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Skipf("%s is not a postgres:// URL (a keyword=value connection string?); OpenStore needs one", envURL)
	}
	q := u.Query()
	add, err := url.ParseQuery(extra)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range add {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func TestOpenStore(t *testing.T) {
	ctx := t.Context()
	server := serverURL(t)
	admin := newPool(t, server)
	table := uniqueTable()
	for _, tt := range []struct {
		name, params   string
		table, chunks  string
		chunkSize      int64
		wantFromParams bool
	}{
		{"Table", "table=" + table, table, table + "_chunks", postgresstore.DefaultChunkSize, true},
		{"Quoted", "table=" + url.QueryEscape(`Q"`+table) + "&chunk_table=" + url.QueryEscape("C."+table) + "&chunk_size=64KiB&application_name=wwebstore-test", `Q"` + table, "C." + table, 64 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, scheme := range []string{"postgres", "postgresql"} {
				u := withParams(t, server, tt.params)
				u = scheme + strings.TrimPrefix(u, u[:strings.Index(u, ":")])
				st, err := remoteauth.OpenStore(ctx, u)
				if err != nil {
					t.Fatalf("OpenStore(%s URL with %s): %v", scheme, tt.params, err)
				}
				pst := st.(*postgresstore.Store)
				if scheme == "postgres" { // the tables stay for the second round
					dropTables(t, admin, pst)
				}
				sessions, chunks, _ := pst.TableNames()
				if sessions != (pgx.Identifier{tt.table}).Sanitize() || chunks != (pgx.Identifier{tt.chunks}).Sanitize() {
					t.Errorf("tables %s and %s, want %q and %q", sessions, chunks, tt.table, tt.chunks)
				}
				c := content{seed: 1, size: 3*tt.chunkSize + 1}
				if err := st.Save(ctx, "RemoteAuth-"+scheme, c.reader()); err != nil {
					t.Fatal(err)
				}
				var n int64
				if err := admin.QueryRow(ctx, "SELECT chunks FROM "+sessions+" WHERE session = $1", "RemoteAuth-"+scheme).Scan(&n); err != nil || n != 4 {
					t.Errorf("chunks = %d, %v; want 4 (chunk size %d)", n, err, tt.chunkSize)
				}
				var buf bytes.Buffer
				if err := st.Extract(ctx, "RemoteAuth-"+scheme, &buf); err != nil || !bytes.Equal(buf.Bytes(), c.bytes(t)) {
					t.Errorf("Extract: %d bytes, %v", buf.Len(), err)
				}
				// The store owns its pool: after Close, it is closed.
				closer, ok := st.(io.Closer)
				if !ok {
					t.Fatal("the store from OpenStore is not an io.Closer")
				}
				if err := closer.Close(); err != nil {
					t.Fatal(err)
				}
				if err := closer.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
				if _, err := st.SessionExists(ctx, "RemoteAuth-"+scheme); err == nil {
					t.Error("SessionExists after Close succeeded; want an error from the closed pool")
				}
			}
		})
	}
	// The URL of a testservers namespace: a schema of its own, which the tables go into.
	t.Run("Schema", func(t *testing.T) {
		srv := testservers.Postgres(t)
		schema := mustQuery(t, srv.URL).Get("schema")
		st, err := remoteauth.OpenStore(ctx, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.(io.Closer).Close()
		sessions, chunks, _ := st.(*postgresstore.Store).TableNames()
		want := pgx.Identifier{schema, postgresstore.DefaultTable}.Sanitize()
		if sessions != want {
			t.Errorf("session table %s, want %s", sessions, want)
		}
		inSchema := pgx.Identifier{schema}.Sanitize() + "."
		if !strings.HasPrefix(chunks, inSchema) {
			t.Errorf("chunk table %s is not in schema %s", chunks, schema)
		}
		c := content{seed: 2, size: 1000}
		if err := st.Save(ctx, "RemoteAuth-schema", c.reader()); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+sessions).Scan(&n); err != nil || n != 1 {
			t.Errorf("rows in %s: %d, %v; want 1", sessions, n, err)
		}
	})
	t.Run("CreateTablesFalse", func(t *testing.T) {
		u := withParams(t, server, "create_tables=false&table="+uniqueTable())
		st, err := remoteauth.OpenStore(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer st.(io.Closer).Close()
		if _, err := st.SessionExists(ctx, "a"); err == nil || !strings.Contains(err.Error(), "42P01") {
			t.Errorf("SessionExists without tables: %v; want undefined_table (42P01)", err)
		}
	})
	t.Run("Errors", func(t *testing.T) {
		for _, bad := range []string{
			withParams(t, server, "chunk_size=1GiB"),
			withParams(t, server, "table="+strings.Repeat("t", 64)),
			withParams(t, server, "no_such_parameter=1&table="+uniqueTable()), // the server refuses it
			withParams(t, server, "schema=no_such_schema_"+uniqueTable()),
		} {
			st, err := remoteauth.OpenStore(ctx, bad)
			if err == nil {
				st.(io.Closer).Close()
				t.Errorf("OpenStore(%s) succeeded", bad)
				continue
			}
			if strings.Contains(err.Error(), "postgres:postgres@") {
				t.Errorf("OpenStore's error shows the password: %v", err)
			}
			t.Log(err)
		}
	})
}

// A store made by New leaves its pool alone on Close.
func TestCloseKeepsCallersPool(t *testing.T) {
	pool := newPool(t, serverURL(t))
	st := newStore(t, pool, pool, nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(t.Context()); err != nil {
		t.Errorf("the caller's pool after Close of the store: %v", err)
	}
	if ok, err := st.SessionExists(t.Context(), "a"); ok || err != nil {
		t.Errorf("SessionExists after Close = %v, %v; want false, nil", ok, err)
	}
}
