package mongostore_test

// Fault tests: the connection to the server is cut (internal/faultproxy) in the middle of a
// Save or an Extract.

import (
	"bytes"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/internal/faultproxy"
	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

// proxied returns a database reached through a fault proxy, the same database reached
// directly (to look at what is stored whatever the proxy does), and the proxy.
func proxied(t *testing.T) (via, direct *mongo.Database, p *faultproxy.Proxy) {
	t.Helper()
	uri := serverURI(t)
	direct = testDB(t, newClient(t, uri))
	p = faultproxy.Start(t, hostPort(t, uri))
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + p.Addr() + "/?directConnection=true").
		SetServerSelectionTimeout(2 * time.Second).SetConnectTimeout(2 * time.Second).SetRetryWrites(false).SetRetryReads(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(t.Context()) })
	return c.Database(direct.Name()), direct, p
}

// orphans returns the files_id of chunks that have no files document.
func orphans(t *testing.T, db *mongo.Database, bucket string) []bson.ObjectID {
	t.Helper()
	res := db.Collection(bucket+".chunks").Distinct(t.Context(), "files_id", bson.D{})
	var ids []bson.ObjectID
	if err := res.Decode(&ids); err != nil {
		t.Fatal(err)
	}
	var out []bson.ObjectID
	for _, id := range ids {
		n, err := db.Collection(bucket+".files").CountDocuments(t.Context(), bson.D{{Key: "_id", Value: id}})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			out = append(out, id)
		}
	}
	return out
}

// TestSaveConnectionCut cuts the connection in the middle of a Save and refuses new ones, so
// that the Save's own cleanup fails too: the Save returns an error wrapping the network error,
// the previous archive stays whole, no files document of the failed upload exists, and the
// next Save (once the grace period is over) deletes the orphan chunks.
func TestSaveConnectionCut(t *testing.T) {
	via, direct, p := proxied(t)
	const grace = time.Second
	st := newStore(t, via, &mongostore.Options{GracePeriod: grace})
	const session = "RemoteAuth-cut"
	bucket := mongostore.DefaultBucketName(session)
	prev := pattern(1, 1<<20+7)
	save(t, st, session, prev)

	p.CutAfter(20 << 20) // after the first 16 MiB buffer of chunks, during the second
	err := st.Save(t.Context(), session, bytes.NewReader(pattern(2, 40<<20)))
	if err == nil {
		t.Fatal("Save through a connection cut after 20 MiB succeeded")
	}
	if !isNetworkError(err) {
		t.Errorf("Save through a cut connection: %v, want an error wrapping the network error", err)
	}
	checkNamed(t, err, session)
	t.Logf("the error: %v", err)
	if n, err := direct.Collection(bucket+".files").CountDocuments(t.Context(), bson.D{{Key: "filename", Value: session + ".zip"}}); err != nil || n != 1 {
		t.Errorf("%d files documents named %s.zip (%v), want only the previous one", n, session, err)
	}
	orph := orphans(t, direct, bucket)
	if len(orph) == 0 {
		t.Fatal("the failed Save left no orphan chunks: the test does not test their cleanup")
	}
	t.Logf("the failed Save left the chunks of %d upload(s) behind", len(orph))

	p.Refuse(false)
	if got := extract(t, st, session); !bytes.Equal(got, prev) {
		t.Fatalf("after the failed Save, Extract wrote %d bytes, not the previous archive (%d)", len(got), len(prev))
	}
	time.Sleep(grace + 1100*time.Millisecond) // ObjectIDs count whole seconds
	next := pattern(3, 2<<20+1)
	save(t, st, session, next)
	if orph := orphans(t, direct, bucket); len(orph) > 0 {
		t.Errorf("after the next Save, the chunks of %d failed uploads remain", len(orph))
	}
	if !bytes.Equal(extract(t, st, session), next) {
		t.Error("Extract after the next Save differs from it")
	}
}

// TestExtractConnectionCut cuts the connection in the middle of an Extract: it returns an
// error wrapping the network error and naming the session; once connections go through again,
// Extract writes the archive whole.
func TestExtractConnectionCut(t *testing.T) {
	via, _, p := proxied(t)
	st := newStore(t, via, nil)
	const session = "RemoteAuth-cutread"
	data := pattern(1, 40<<20+3)
	save(t, st, session, data)

	var partial bytes.Buffer
	err := st.Extract(t.Context(), session, faultproxy.TripWriter(&partial, 1<<20, func() {
		p.Refuse(true)
		p.Cut()
	}))
	if err == nil {
		t.Fatal("Extract through a connection cut after 1 MiB succeeded")
	}
	if !isNetworkError(err) {
		t.Errorf("Extract through a cut connection: %v, want an error wrapping the network error", err)
	}
	checkNamed(t, err, session)
	t.Logf("the error, after %d bytes: %v", partial.Len(), err)

	// A server that cannot be reached is an error, never "no session".
	if ok, err := st.SessionExists(t.Context(), session); err == nil {
		t.Errorf("SessionExists with the server unreachable = %v, nil; want an error", ok)
	}

	p.Refuse(false)
	if got := extract(t, st, session); !bytes.Equal(got, data) {
		t.Fatalf("Extract after the cut wrote %d bytes, not the archive (%d)", len(got), len(data))
	}
}
