package mongostore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/wwebstore/wwebstore/internal/leasetest"
	"github.com/wwebstore/wwebstore/remoteauth"
	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

// checkLeaseLost checks that err wraps remoteauth.ErrLeaseLost and names the store and session.
func checkLeaseLost(t *testing.T, err error, what, session string) {
	t.Helper()
	if !errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Errorf("%s: %v, want an error wrapping ErrLeaseLost", what, err)
	}
	checkNamed(t, err, session)
}

type leaseDoc struct {
	ID       string    `bson:"_id"`
	Key      string    `bson:"key"`
	Token    int64     `bson:"token"`
	Owner    string    `bson:"owner"`
	Expires  time.Time `bson:"expires"`
	Released bool      `bson:"released"`
}

// TestLeaseLayout checks the lease documents of the package documentation: one per session (the
// older ones deleted by a grant), their fields, the server's clock for the expiry, the token in
// the metadata of the revisions saved under a lease, and that neither Store.Delete nor
// Lease.Delete removes the lease document, so that tokens never go back.
func TestLeaseLayout(t *testing.T) {
	db := testDB(t, newClient(t, serverURI(t)))
	st := newStore(t, db, nil)
	const session = "RemoteAuth-leaselayout"
	bucket := mongostore.DefaultBucketName(session)
	leases := db.Collection(mongostore.DefaultLeaseCollection)
	var hello struct {
		LocalTime time.Time `bson:"localTime"`
	}
	if err := db.RunCommand(t.Context(), bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		t.Fatal(err)
	}
	a := leasetest.Acquire(t, st, session, "owner-a", time.Hour)
	docs := findAll[leaseDoc](t, leases, bson.D{}, nil)
	if len(docs) != 1 {
		t.Fatalf("%d lease documents, want 1: %+v", len(docs), docs)
	}
	want := leaseDoc{ID: fmt.Sprintf("%s/%s/%020d", bucket, session, a.Token()), Key: bucket + "/" + session, Token: int64(a.Token()), Owner: "owner-a"}
	got := docs[0]
	exp := got.Expires
	got.Expires = time.Time{}
	if got != want {
		t.Errorf("lease document %+v, want %+v", got, want)
	}
	// The server's clock: an hour after the server's time read before the grant (not a timing
	// assertion: a day off means the client's clock, a wrong unit or a wrong field).
	if d := exp.Sub(hello.LocalTime); d < time.Hour || d > time.Hour+time.Minute {
		t.Errorf("the lease expires %v after the server's time before the grant, want about 1h", d)
	}
	data := pattern(1, 300<<10)
	if err := a.Save(t.Context(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	files := findAll[filesDoc](t, db.Collection(bucket+".files"), bson.D{{Key: "filename", Value: session + ".zip"}}, nil)
	if len(files) != 1 || fmt.Sprint(files[0].Metadata["wwebstoreLeaseToken"]) != fmt.Sprint(a.Token()) {
		t.Fatalf("files documents %+v, want one with metadata.wwebstoreLeaseToken %d", files, a.Token())
	}
	if err := a.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(t.Context(), session); err != nil {
		t.Fatal(err)
	}
	docs = findAll[leaseDoc](t, leases, bson.D{}, nil)
	if len(docs) != 1 || !docs[0].Released || docs[0].Token != int64(a.Token()) {
		t.Fatalf("after Delete and Release, lease documents %+v, want the released one of token %d", docs, a.Token())
	}
	b := leasetest.Acquire(t, st, session, "owner-b", time.Hour)
	if b.Token() != a.Token()+1 {
		t.Errorf("the grant after deletes has token %d, want %d", b.Token(), a.Token()+1)
	}
	if docs = findAll[leaseDoc](t, leases, bson.D{}, nil); len(docs) != 1 || docs[0].Token != int64(b.Token()) {
		t.Errorf("after a second grant, lease documents %+v, want only token %d's", docs, b.Token())
	}
}

// TestLeaseFenceConnectionCut cuts the connection during a leased Save: the Save fails with the
// network error, not ErrLeaseLost, and leaves the archive; once the connection is back, the
// lease, expired but not taken over, still saves; after a takeover, every write of it is refused
// and the newer holder's archive stays.
func TestLeaseFenceConnectionCut(t *testing.T) {
	via, direct, p := proxied(t)
	st := newStore(t, via, &mongostore.Options{GracePeriod: time.Second})
	other := newStore(t, direct, nil)
	const session = "RemoteAuth-leasecut"
	const ttl = 300 * time.Millisecond
	a := leasetest.Acquire(t, st, session, "cut-holder", ttl)
	prev := pattern(1, 1<<20+3)
	if err := a.Save(t.Context(), bytes.NewReader(prev)); err != nil {
		t.Fatal(err)
	}

	p.CutAfter(2 << 20)
	err := a.Save(t.Context(), bytes.NewReader(pattern(2, 12<<20)))
	if err == nil || !isNetworkError(err) || errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Fatalf("leased Save through a connection cut after 2 MiB: %v, want the network error", err)
	}
	checkNamed(t, err, session)
	if !bytes.Equal(extract(t, other, session), prev) {
		t.Fatal("after the cut Save, the archive is not the previous one")
	}
	p.Refuse(false)
	time.Sleep(2 * ttl) // past the expiry: an expired lease that nobody took over still writes
	mid := pattern(3, 200<<10)
	if err := a.Save(t.Context(), bytes.NewReader(mid)); err != nil {
		t.Fatalf("leased Save after the connection came back, nobody having taken the session over: %v", err)
	}

	b := leasetest.TakeOver(t, other, session, "taker", time.Hour)
	newer := pattern(4, 300<<10)
	if err := b.Save(t.Context(), bytes.NewReader(newer)); err != nil {
		t.Fatal(err)
	}
	what := fmt.Sprintf("of token %d after token %d saved", a.Token(), b.Token())
	checkLeaseLost(t, a.Save(t.Context(), bytes.NewReader(pattern(5, 1<<20))), "Save "+what, session)
	checkLeaseLost(t, a.Renew(t.Context()), "Renew "+what, session)
	checkLeaseLost(t, a.Delete(t.Context()), "Delete "+what, session)
	if !bytes.Equal(extract(t, other, session), newer) {
		t.Error("the stale holder changed the newer holder's archive")
	}
}

// TestLeaseAcrossStores has Stores on clients of their own (as processes would be) acquire one
// session at once, for several rounds: exactly one wins each round and the others are told who;
// after its Release another Store acquires at once with a higher token, and the released lease's
// writes are refused.
func TestLeaseAcrossStores(t *testing.T) {
	const n, rounds, session = 6, 3, "RemoteAuth-procs"
	uri := serverURI(t)
	dbName := testDB(t, newClient(t, uri)).Name()
	stores := make([]*mongostore.Store, n)
	for i := range stores {
		stores[i] = newStore(t, newClient(t, uri).Database(dbName), nil)
	}
	var last uint64
	for round := range rounds {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			won  = map[int]remoteauth.Lease{}
			held []*remoteauth.LeaseHeldError
		)
		start := make(chan struct{})
		for i, st := range stores {
			wg.Go(func() {
				<-start
				l, err := st.AcquireLease(t.Context(), session, fmt.Sprintf("store-%d", i), time.Hour)
				mu.Lock()
				defer mu.Unlock()
				var h *remoteauth.LeaseHeldError
				switch {
				case err == nil:
					won[i] = l
				case errors.As(err, &h):
					held = append(held, h)
				default:
					t.Errorf("AcquireLease through store %d: %v", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d of %d Stores acquired the session at once, want exactly 1", round+1, len(won), n)
		}
		var winner int
		for i := range won {
			winner = i
		}
		first := won[winner]
		for _, h := range held {
			if h.Owner != fmt.Sprintf("store-%d", winner) {
				t.Errorf("round %d: a loser was told %q holds the session, but store-%d does", round+1, h.Owner, winner)
			}
		}
		if first.Token() <= last {
			t.Errorf("round %d: token %d, not above %d", round+1, first.Token(), last)
		}
		last = first.Token()
		data := pattern(byte(10+round), 100<<10)
		if err := first.Save(t.Context(), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if err := first.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkLeaseLost(t, first.Save(t.Context(), bytes.NewReader(pattern(2, 1000))), "Save of a released lease", session)
		if !bytes.Equal(extract(t, stores[(winner+1)%n], session), data) {
			t.Errorf("round %d: the archive is not the last holder's Save", round+1)
		}
	}
}

// TestLeaseStaleWriter: a holder's Save is reading when its lease expires; another Store takes
// the session over and saves. The first Save, once its reader goes on, returns ErrLeaseLost and
// leaves nothing: the archive and its history are the newer holder's. Then the window that a
// server without transactions leaves (a stale Save's files document written just after its last
// check) is reproduced by writing such a revision by hand, with a lower token and a later
// uploadDate: Extract, Versions, List and the next Save still take the newer lease's revision as
// the archive, and that Save retires the stale one.
func TestLeaseStaleWriter(t *testing.T) {
	uri := serverURI(t)
	db := testDB(t, newClient(t, uri))
	stale := newStore(t, newClient(t, uri).Database(db.Name()), &mongostore.Options{ChunkSize: 64 << 10})
	fresh := newStore(t, db, nil)
	const session = "RemoteAuth-staleinflight"
	bucket := mongostore.DefaultBucketName(session)
	a := leasetest.Acquire(t, stale, session, "stale", 200*time.Millisecond)
	old := pattern(1, 10<<10)
	if err := a.Save(t.Context(), bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	gate := &gate{reached: make(chan struct{}), open: make(chan struct{})}
	r := io.MultiReader(bytes.NewReader(pattern(2, 1<<20)), gate, bytes.NewReader(pattern(3, 1<<20)))
	saved := make(chan error, 1)
	go func() { saved <- a.Save(t.Context(), r) }()
	select {
	case <-gate.reached:
	case err := <-saved:
		t.Fatalf("the leased Save returned %v before reading its first MiB", err)
	}
	b := leasetest.TakeOver(t, fresh, session, "fresh", time.Hour)
	newer := pattern(4, 50<<10)
	if err := b.Save(t.Context(), bytes.NewReader(newer)); err != nil {
		t.Fatal(err)
	}
	close(gate.open)
	checkLeaseLost(t, <-saved, "the stale holder's Save in flight", session)
	if !bytes.Equal(extract(t, fresh, session), newer) {
		t.Error("the stale Save replaced the newer archive")
	}
	v, err := fresh.Versions(t.Context(), session)
	if err != nil || len(v) != 2 {
		t.Fatalf("Versions = %v, %v; want the newer archive and the one before it", v, err)
	}
	var prev bytes.Buffer
	if err := fresh.ExtractVersion(t.Context(), session, v[1].ID, &prev); err != nil || !bytes.Equal(prev.Bytes(), old) {
		t.Errorf("the kept archive is not the stale holder's last good Save (%v)", err)
	}
	if orph := orphans(t, db, bucket); len(orph) > 0 {
		t.Errorf("the stale Save left the chunks of %d uploads", len(orph))
	}

	// The window: a stale revision named <session>.zip, newer by uploadDate, lower by token.
	id := bson.NewObjectID()
	staleData := []byte("a stale holder's archive")
	if _, err := db.Collection(bucket+".chunks").InsertOne(t.Context(), bson.D{{Key: "files_id", Value: id}, {Key: "n", Value: int32(0)}, {Key: "data", Value: bson.Binary{Data: staleData}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(bucket+".files").InsertOne(t.Context(), bson.D{
		{Key: "_id", Value: id}, {Key: "length", Value: int64(len(staleData))}, {Key: "chunkSize", Value: int32(255 << 10)},
		{Key: "uploadDate", Value: bson.NewDateTimeFromTime(time.Now().Add(time.Minute))}, {Key: "filename", Value: session + ".zip"},
		{Key: "metadata", Value: bson.D{{Key: "wwebstoreLeaseToken", Value: int64(a.Token())}}},
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(extract(t, fresh, session), newer) {
		t.Error("with a stale revision newer by uploadDate, Extract did not read the newer lease's archive")
	}
	if v2, err := fresh.Versions(t.Context(), session); err != nil || len(v2) != 2 || v2[0] != v[0] {
		t.Errorf("with a stale revision, Versions = %v, %v; want %v", v2, err, v)
	}
	list, err := fresh.List(t.Context())
	if err != nil || len(list) != 1 || list[0].Size != int64(len(newer)) {
		t.Errorf("with a stale revision, List = %+v, %v; want the newer archive's size %d", list, err, len(newer))
	}
	next := pattern(5, 70<<10)
	if err := b.Save(t.Context(), bytes.NewReader(next)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(extract(t, fresh, session), next) {
		t.Error("after the newer holder's next Save, Extract did not read it")
	}
	if n, err := db.Collection(bucket+".files").CountDocuments(t.Context(), bson.D{{Key: "filename", Value: session + ".zip"}}); err != nil || n != 1 {
		t.Errorf("after the next Save, %d revisions named %s.zip (%v), want 1: the stale one retired", n, session, err)
	}
}

// gate is a reader that closes reached at its first Read, waits for open to be closed, and
// then reports its end.
type gate struct {
	reached, open chan struct{}
	once          sync.Once
}

func (g *gate) Read([]byte) (int, error) {
	g.once.Do(func() { close(g.reached) })
	<-g.open
	return 0, io.EOF
}
