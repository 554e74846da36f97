package mongostore_test

// Real MongoDB-wire servers for the tests: the one that internal/testservers shares among the
// tests of the binary (WWEBSTORE_MONGO_URL's, or a container: mongo:8, or FerretDB on machines
// without MongoDB). Each test gets a database of its own, dropped when it ends.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/internal/testservers"
	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

func TestMain(m *testing.M) { testservers.Main(m) }

// serverURI returns the connection string, without a database, of the server that the tests of
// the binary share (testservers.MongoURL).
func serverURI(t testing.TB) string {
	t.Helper()
	return testservers.MongoURL(t)
}

// hostPort returns the first host:port of a mongodb:// connection string.
func hostPort(t testing.TB, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "mongodb" {
		t.Fatalf("WWEBSTORE_MONGO_URL: want a mongodb:// URL for this test (%v)", err)
	}
	return strings.Split(u.Host, ",")[0]
}

// newClient returns a client of uri that the test's cleanup disconnects.
func newClient(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// testDB returns a new database on c's server, dropped when the test ends.
func testDB(t testing.TB, c *mongo.Client) *mongo.Database {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	db := c.Database("wwebstore_test_" + hex.EncodeToString(b))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("dropping test database %s: %v", db.Name(), err)
		}
	})
	return db
}

func newStore(t testing.TB, db *mongo.Database, opts *mongostore.Options) *mongostore.Store {
	t.Helper()
	st, err := mongostore.New(t.Context(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// pattern returns n pseudo-random bytes of seed.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func save(t testing.TB, st *mongostore.Store, session string, data []byte) {
	t.Helper()
	if err := st.Save(t.Context(), session, bytes.NewReader(data)); err != nil {
		t.Fatalf("Save(%q): %v", session, err)
	}
}

func extract(t testing.TB, st *mongostore.Store, session string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := st.Extract(t.Context(), session, &b); err != nil {
		t.Fatalf("Extract(%q): %v", session, err)
	}
	return b.Bytes()
}

// isNetworkError reports whether err is what a client sees when its connection breaks.
func isNetworkError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection") || strings.Contains(s, "server selection")
}

// checkNamed checks that err names the store and the session.
func checkNamed(t testing.TB, err error, session string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "mongostore") || !strings.Contains(err.Error(), session) {
		t.Errorf("error %v does not name mongostore and session %q", err, session)
	}
}
