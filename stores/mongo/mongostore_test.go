package mongostore_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/remoteauth"
	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
	"github.com/wwebstore/wwebstore/storetest"
)

var _ remoteauth.Store = (*mongostore.Store)(nil)

func TestConformance(t *testing.T) {
	c := newClient(t, serverURI(t))
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		return newStore(t, testDB(t, c), nil)
	})
}

// TestConformanceSmallChunks runs the suite with a chunk size that does not divide the sizes
// the suite uses, and a short grace period, so that retired revisions are deleted while
// Extracts may still run.
func TestConformanceSmallChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	c := newClient(t, serverURI(t))
	storetest.Run(t, func(t *testing.T) remoteauth.Store {
		return newStore(t, testDB(t, c), &mongostore.Options{ChunkSize: 100<<10 + 3, GracePeriod: 5 * time.Second, RetiredGracePeriod: time.Second})
	})
}

type filesDoc struct {
	ID         bson.ObjectID  `bson:"_id"`
	Length     int64          `bson:"length"`
	ChunkSize  int32          `bson:"chunkSize"`
	UploadDate bson.DateTime  `bson:"uploadDate"`
	Filename   string         `bson:"filename"`
	Metadata   map[string]any `bson:"metadata,omitempty"`
}

type chunkDoc struct {
	ID      bson.ObjectID `bson:"_id"`
	FilesID bson.ObjectID `bson:"files_id"`
	N       int32         `bson:"n"`
	Data    []byte        `bson:"data"`
}

func findAll[T any](t testing.TB, coll *mongo.Collection, filter any, sort bson.D) []T {
	t.Helper()
	o := options.Find()
	if sort != nil {
		o.SetSort(sort)
	}
	cur, err := coll.Find(context.Background(), filter, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	if err := cur.All(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayout checks that the archive is where wwebjs-mongo puts it and looks for it: bucket
// "whatsapp-<session>", file "<session>.zip", GridFS chunks of 255 KiB numbered from 0, and only
// one revision named so after a Save.
func TestLayout(t *testing.T) {
	c := newClient(t, serverURI(t))
	db := testDB(t, c)
	st := newStore(t, db, nil)
	const session = "RemoteAuth-alice"
	first := pattern(1, 600<<10+5)
	save(t, st, session, first)
	data := pattern(2, 3*255<<10+17)
	save(t, st, session, data)

	names, err := db.ListCollectionNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"whatsapp-RemoteAuth-alice.files": true, "whatsapp-RemoteAuth-alice.chunks": true}
	for _, n := range names {
		if !want[n] {
			t.Errorf("unexpected collection %q", n)
		}
		delete(want, n)
	}
	if len(want) > 0 {
		t.Errorf("missing collections %v (have %q)", want, names)
	}
	files := db.Collection("whatsapp-RemoteAuth-alice.files")
	chunks := db.Collection("whatsapp-RemoteAuth-alice.chunks")
	cur := findAll[filesDoc](t, files, bson.D{{Key: "filename", Value: "RemoteAuth-alice.zip"}}, nil)
	if len(cur) != 1 {
		t.Fatalf("%d files documents named RemoteAuth-alice.zip after two Saves, want 1", len(cur))
	}
	f := cur[0]
	if f.Length != int64(len(data)) || f.ChunkSize != 255<<10 {
		t.Errorf("files document %+v: want length %d, chunkSize %d", f, len(data), 255<<10)
	}
	cs := findAll[chunkDoc](t, chunks, bson.D{{Key: "files_id", Value: f.ID}}, bson.D{{Key: "n", Value: 1}})
	if len(cs) != 4 {
		t.Fatalf("%d chunks, want 4", len(cs))
	}
	var all []byte
	for i, ch := range cs {
		if ch.N != int32(i) {
			t.Errorf("chunk %d has n=%d", i, ch.N)
		}
		if i < 3 && len(ch.Data) != 255<<10 {
			t.Errorf("chunk %d holds %d bytes, want %d", i, len(ch.Data), 255<<10)
		}
		all = append(all, ch.Data...)
	}
	if !bytes.Equal(all, data) {
		t.Error("the chunks do not hold the archive")
	}
	// What wwebjs-mongo's extract does: openDownloadStreamByName(`${session}.zip`), newest revision.
	b := db.GridFSBucket(options.GridFSBucket().SetName("whatsapp-RemoteAuth-alice"))
	var got bytes.Buffer
	if _, err := b.DownloadToStreamByName(t.Context(), "RemoteAuth-alice.zip", &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Error("the driver's download by name does not give the archive")
	}
	// The first revision is retired, not yet deleted (grace period).
	ret := findAll[filesDoc](t, files, bson.D{{Key: "filename", Value: "RemoteAuth-alice.zip.retired"}}, nil)
	if len(ret) != 1 || ret[0].Length != int64(len(first)) {
		t.Errorf("retired revisions: %+v, want the first one", ret)
	}
}

// TestReadsForeignRevisions: revisions written by another GridFS client (as wwebjs-mongo does:
// uploadFromStream into the bucket, several revisions) are read, newest first, and a Save
// retires all of them, not only the oldest. With Keep 1 (no history) and a grace period of
// 1 ns, each Save deletes the revisions that the Save before it retired.
func TestReadsForeignRevisions(t *testing.T) {
	c := newClient(t, serverURI(t))
	db := testDB(t, c)
	st := newStore(t, db, &mongostore.Options{RetiredGracePeriod: time.Nanosecond, Keep: 1})
	const session = "RemoteAuth-node"
	b := db.GridFSBucket(options.GridFSBucket().SetName("whatsapp-" + session))
	var last []byte
	for i := range 3 {
		last = pattern(byte(10+i), 300<<10+i)
		if _, err := b.UploadFromStream(t.Context(), session+".zip", bytes.NewReader(last)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	if ok, err := st.SessionExists(t.Context(), session); err != nil || !ok {
		t.Fatalf("SessionExists = %v, %v", ok, err)
	}
	if !bytes.Equal(extract(t, st, session), last) {
		t.Fatal("Extract did not give the newest revision")
	}
	next := pattern(20, 1000)
	save(t, st, session, next)
	files := db.Collection("whatsapp-" + session + ".files")
	if docs := findAll[filesDoc](t, files, bson.D{{Key: "filename", Value: session + ".zip"}}, nil); len(docs) != 1 {
		t.Errorf("%d revisions named %s.zip after a Save, want 1", len(docs), session)
	}
	// With Keep 1 and a retired grace period of 1 ns, the next Save deletes the retired revisions.
	save(t, st, session, next)
	if docs := findAll[filesDoc](t, files, bson.D{}, nil); len(docs) != 2 {
		t.Errorf("%d files documents, want the current one and the one just retired", len(docs))
	}
	n, err := db.Collection("whatsapp-"+session+".chunks").CountDocuments(t.Context(), bson.D{})
	if err != nil || n != 2 {
		t.Errorf("%d chunks (%v), want 2 (the two 1000-byte revisions)", n, err)
	}
	if err := st.Delete(t.Context(), session); err != nil {
		t.Fatal(err)
	}
	if docs := findAll[filesDoc](t, files, bson.D{}, nil); len(docs) != 0 {
		t.Errorf("%d files documents after Delete", len(docs))
	}
}

// TestSameMillisecond: two revisions with the same uploadDate; the higher ObjectID is the archive.
func TestSameMillisecond(t *testing.T) {
	c := newClient(t, serverURI(t))
	db := testDB(t, c)
	st := newStore(t, db, nil)
	const session = "RemoteAuth-tie"
	files := db.Collection("whatsapp-" + session + ".files")
	chunks := db.Collection("whatsapp-" + session + ".chunks")
	now := bson.NewDateTimeFromTime(time.Now())
	lo, hi := bson.NewObjectID(), bson.NewObjectID()
	for _, r := range []struct {
		id   bson.ObjectID
		data string
	}{{hi, "high"}, {lo, "low"}} { // inserted in the other order
		if _, err := chunks.InsertOne(t.Context(), bson.D{{Key: "files_id", Value: r.id}, {Key: "n", Value: int32(0)}, {Key: "data", Value: []byte(r.data)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := files.InsertOne(t.Context(), bson.D{{Key: "_id", Value: r.id}, {Key: "length", Value: int64(len(r.data))},
			{Key: "chunkSize", Value: int32(255 << 10)}, {Key: "uploadDate", Value: now}, {Key: "filename", Value: session + ".zip"}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(extract(t, st, session)); got != "high" {
		t.Errorf("Extract = %q, want the revision with the higher ObjectID", got)
	}
}

// TestConcurrentSavesLeaveOneRevision: after concurrent Saves, exactly one revision is named
// "<session>.zip", the newest, and it is one of the inputs.
func TestConcurrentSavesLeaveOneRevision(t *testing.T) {
	c := newClient(t, serverURI(t))
	db := testDB(t, c)
	st := newStore(t, db, &mongostore.Options{ChunkSize: 1 << 10})
	const session = "RemoteAuth-race"
	inputs := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range inputs {
		inputs[i] = pattern(byte(30+i), 5000+i)
		wg.Go(func() {
			if err := st.Save(t.Context(), session, bytes.NewReader(inputs[i])); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	files := db.Collection("whatsapp-" + session + ".files")
	docs := findAll[filesDoc](t, files, bson.D{{Key: "filename", Value: session + ".zip"}}, nil)
	if len(docs) != 1 {
		t.Fatalf("%d revisions named %s.zip after concurrent Saves, want 1", len(docs), session)
	}
	got := extract(t, st, session)
	for _, in := range inputs {
		if bytes.Equal(got, in) {
			return
		}
	}
	t.Errorf("Extract wrote %d bytes that are none of the inputs", len(got))
}

func TestInvalidBucketName(t *testing.T) {
	c := newClient(t, serverURI(t))
	st := newStore(t, testDB(t, c), &mongostore.Options{BucketName: func(string) string { return "a$b" }})
	_, err := st.SessionExists(t.Context(), "x")
	if err == nil {
		t.Fatal("a bucket name with $ was accepted")
	}
	var b bytes.Buffer
	if err := st.Extract(t.Context(), "../x", &b); !errors.Is(err, remoteauth.ErrInvalidSession) {
		t.Errorf("Extract(../x) = %v", err)
	}
}

// TestDeadline checks that every operation works under a context with a deadline, as
// Session.Close has on SIGTERM: the driver sends such a deadline as maxTimeMS, which FerretDB
// refuses on distinct (the orphan sweep of Save and Delete, and List).
func TestDeadline(t *testing.T) {
	st := newStore(t, testDB(t, newClient(t, serverURI(t))), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	want := pattern(7, 3<<20)
	for i := range 2 { // the second Save retires the first revision and sweeps orphans
		if err := st.Save(ctx, "RemoteAuth-deadline", bytes.NewReader(want)); err != nil {
			t.Fatalf("Save %d under a deadline: %v", i+1, err)
		}
	}
	var got bytes.Buffer
	if err := st.Extract(ctx, "RemoteAuth-deadline", &got); err != nil {
		t.Fatalf("Extract under a deadline: %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("Extract wrote %d bytes, not the %d saved", got.Len(), len(want))
	}
	if list, err := st.List(ctx); err != nil || len(list) != 1 || list[0].Name != "RemoteAuth-deadline" {
		t.Errorf("List under a deadline = %v, %v; want the one session", list, err)
	}
	if err := st.Delete(ctx, "RemoteAuth-deadline"); err != nil {
		t.Errorf("Delete under a deadline: %v", err)
	}
}
