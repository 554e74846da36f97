package mongostore_test

import (
	"bytes"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, uri, db string
		chunk       int
		grace       time.Duration
		bucket      string // of session "s"
		keep        int
	}{
		{in: "mongodb://h/db", uri: "mongodb://h/db", db: "db", bucket: "whatsapp-s"},
		{in: "mongodb+srv://u:p@cluster.example.com/wa?retryWrites=true&w=majority", uri: "mongodb+srv://u:p@cluster.example.com/wa?retryWrites=true&w=majority", db: "wa", bucket: "whatsapp-s"},
		{in: "mongodb://h1:1,h2:2/db?replicaSet=rs&chunk_size=1MiB&grace=10m&retired_grace=2m&bucket=app-{session}", uri: "mongodb://h1:1,h2:2/db?replicaSet=rs", db: "db",
			chunk: 1 << 20, grace: 10 * time.Minute, bucket: "app-s"},
		{in: "mongodb://h/db?bucket=fs", uri: "mongodb://h/db", db: "db", bucket: "fs"},
		{in: "mongodb://h/db?keep=3&w=majority", uri: "mongodb://h/db?w=majority", db: "db", bucket: "whatsapp-s", keep: 3},
		{in: "mongodb://h/db?keep=1", uri: "mongodb://h/db", db: "db", bucket: "whatsapp-s", keep: 1},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		uri, db, o, err := mongostore.ParseURL(u)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		bucket := mongostore.DefaultBucketName("s")
		if o.BucketName != nil {
			bucket = o.BucketName("s")
		}
		if uri != tc.uri || db != tc.db || o.ChunkSize != tc.chunk || o.GracePeriod != tc.grace || bucket != tc.bucket || o.Keep != tc.keep {
			t.Errorf("%s: got %s %s %d %v %s keep=%d", tc.in, uri, db, o.ChunkSize, o.GracePeriod, bucket, o.Keep)
		}
	}
	for _, in := range []string{
		"mongodb://h", "mongodb://h/", "mongodb://h/a.b", "mongodb://h/db?chunk_size=0", "mongodb://h/db?chunk_size=16MiB",
		"mongodb://h/db?grace=x", "mongodb://h/db?retired_grace=-1s", "mongodb://h/db?bucket=", "mongodb:opaque",
		"mongodb://h/db?keep=0", "mongodb://h/db?keep=-1", "mongodb://h/db?keep=x", "mongodb://h/db?keep=1&keep=2", "mongodb://h/db?keep=",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := mongostore.ParseURL(u); err == nil || !strings.Contains(err.Error(), "mongostore") {
			t.Errorf("%s: error %v, want a mongostore error", in, err)
		}
	}
}

func TestOpenStoreMissingDatabase(t *testing.T) {
	_, err := remoteauth.OpenStore(t.Context(), "mongodb://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "database") {
		t.Errorf("OpenStore without a database: %v", err)
	}
}

// TestOpenStore opens the store by the URL of a testservers namespace (its database), with a
// chunk size, and checks that Close disconnects the client that OpenStore made.
func TestOpenStore(t *testing.T) {
	srv := testservers.Mongo(t)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	db := newClient(t, srv.URL).Database(strings.TrimPrefix(u.Path, "/"))
	q := u.Query()
	q.Set("chunk_size", "64KiB")
	u.RawQuery = q.Encode()
	st, err := remoteauth.OpenStore(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(5, 200<<10)
	if err := st.Save(t.Context(), "RemoteAuth-url", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := st.Extract(t.Context(), "RemoteAuth-url", &b); err != nil || !bytes.Equal(b.Bytes(), data) {
		t.Fatalf("Extract: %v", err)
	}
	if n, err := db.Collection("whatsapp-RemoteAuth-url.chunks").EstimatedDocumentCount(t.Context()); err != nil || n != 4 {
		t.Errorf("%d chunks of 64 KiB (%v), want 4", n, err)
	}
	if err := st.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SessionExists(t.Context(), "RemoteAuth-url"); err == nil {
		t.Error("SessionExists after Close succeeded")
	}
}

func TestOptions(t *testing.T) {
	c := newClient(t, serverURI(t))
	db := testDB(t, c)
	for _, o := range []mongostore.Options{
		{ChunkSize: -1}, {ChunkSize: mongostore.MaxChunkSize + 1}, {GracePeriod: -time.Second}, {RetiredGracePeriod: -time.Second}, {Keep: -1},
	} {
		if _, err := mongostore.New(t.Context(), db, &o); err == nil {
			t.Errorf("New with %+v succeeded", o)
		}
	}
	if _, err := mongostore.New(t.Context(), nil, nil); err == nil {
		t.Error("New with a nil database succeeded")
	}
	st := newStore(t, db, nil)
	if err := st.Close(); err != nil { // the caller's client: nothing to do
		t.Fatal(err)
	}
	if _, err := st.SessionExists(t.Context(), "a"); err != nil {
		t.Errorf("Close of a Store made by New closed the caller's client: %v", err)
	}
}
