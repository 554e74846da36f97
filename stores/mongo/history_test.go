package mongostore_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/remoteauth"
	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

// versions returns the kept archives of session, newest first, and their IDs, each read back
// with ExtractVersion.
func versions(t *testing.T, st *mongostore.Store, session string) (data [][]byte, ids []string) {
	t.Helper()
	list, err := st.Versions(t.Context(), session)
	if err != nil {
		t.Fatalf("Versions(%q): %v", session, err)
	}
	for _, v := range list {
		var b bytes.Buffer
		if err := st.ExtractVersion(t.Context(), session, v.ID, &b); err != nil {
			t.Fatalf("ExtractVersion(%q, %q): %v", session, v.ID, err)
		}
		if int64(b.Len()) != v.Size {
			t.Errorf("ExtractVersion(%q, %q) wrote %d bytes; Versions says %d", session, v.ID, b.Len(), v.Size)
		}
		data = append(data, b.Bytes())
		ids = append(ids, v.ID)
	}
	return data, ids
}

// checkVersionsEqual checks that session's kept archives are want, newest first.
func checkVersionsEqual(t *testing.T, st *mongostore.Store, session string, want ...[]byte) []string {
	t.Helper()
	got, ids := versions(t, st, session)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("Versions(%q) gives %d archives of sizes %v, want %d of sizes %v", session, len(got), sizes(got), len(want), sizes(want))
	}
	return ids
}

func sizes(list [][]byte) []int {
	var n []int
	for _, b := range list {
		n = append(n, len(b))
	}
	return n
}

// checkNotKept checks that ExtractVersion of id returns ErrNotFound, naming the session, and
// writes nothing.
func checkNotKept(t *testing.T, st *mongostore.Store, session, id string) {
	t.Helper()
	var b bytes.Buffer
	err := st.ExtractVersion(t.Context(), session, id, &b)
	if !errors.Is(err, remoteauth.ErrNotFound) || b.Len() > 0 {
		t.Errorf("ExtractVersion(%q, %q) = %v after writing %d bytes; want ErrNotFound and nothing written", session, id, err, b.Len())
	}
	checkNamed(t, err, session)
}

// TestHistoryLayout: the kept archives are the retired revisions, under their ObjectIDs; the
// archive stays the single revision named "<session>.zip", what wwebjs-mongo reads; an evicted
// revision is no longer listed nor extracted, and stays in the bucket for the grace period.
func TestHistoryLayout(t *testing.T) {
	db := testDB(t, newClient(t, serverURI(t)))
	st := newStore(t, db, &mongostore.Options{Keep: 3})
	const session = "RemoteAuth-alice"
	saved := [][]byte{pattern(1, 300<<10), pattern(2, 2000), pattern(3, 600<<10+1), pattern(4, 10)}
	var firstID string
	for i, data := range saved {
		save(t, st, session, data)
		if i == 0 {
			_, ids := versions(t, st, session)
			firstID = ids[0]
		}
	}
	ids := checkVersionsEqual(t, st, session, saved[3], saved[2], saved[1])
	files := db.Collection("whatsapp-" + session + ".files")
	docs := findAll[filesDoc](t, files, bson.D{}, bson.D{{Key: "uploadDate", Value: -1}, {Key: "_id", Value: -1}})
	if len(docs) != 4 {
		t.Fatalf("%d files documents, want 4: 3 kept and 1 evicted within its grace period", len(docs))
	}
	for i, d := range docs {
		name := session + ".zip.retired"
		if i == 0 {
			name = session + ".zip"
		}
		if d.Filename != name || d.Length != int64(len(saved[3-i])) {
			t.Errorf("files document %d: %s of %d bytes, want %s of %d", i, d.Filename, d.Length, name, len(saved[3-i]))
		}
		if i < 3 && d.ID.Hex() != ids[i] {
			t.Errorf("files document %d has _id %s; Versions lists ID %s", i, d.ID.Hex(), ids[i])
		}
		if _, ok := d.Metadata["wwebstoreRetiredAt"]; i > 0 && !ok {
			t.Errorf("retired files document %d has no metadata.wwebstoreRetiredAt: %v", i, d.Metadata)
		}
	}
	if docs[3].ID.Hex() != firstID {
		t.Errorf("the evicted revision has _id %s, but the first Save's archive had ID %s", docs[3].ID.Hex(), firstID)
	}
	checkNotKept(t, st, session, firstID)
	b := db.GridFSBucket(options.GridFSBucket().SetName("whatsapp-" + session))
	var got bytes.Buffer
	if _, err := b.DownloadToStreamByName(t.Context(), session+".zip", &got); err != nil || !bytes.Equal(got.Bytes(), saved[3]) {
		t.Errorf("the driver's download by name (what wwebjs-mongo does) = %d bytes, %v; want the newest archive", got.Len(), err)
	}
	if list, err := st.List(t.Context()); err != nil || len(list) != 1 || list[0].Name != session {
		t.Errorf("List = %v, %v; want the session once, without its kept archives", list, err)
	}
}

// TestHistoryKeep saves five archives with several Keep values, with a grace period of 1 ns
// (evicted revisions deleted by the next Save) and the default one (evicted revisions stay in
// the bucket for a minute, unlisted).
func TestHistoryKeep(t *testing.T) {
	db := testDB(t, newClient(t, serverURI(t)))
	saved := [][]byte{pattern(11, 1000), pattern(12, 2000), pattern(13, 3000), pattern(14, 4000), pattern(15, 5000)}
	for _, tt := range []struct {
		keep  int
		grace time.Duration
		docs  int // files documents after the five Saves
	}{
		{keep: 0, grace: time.Nanosecond, docs: 3}, // the default, 2
		{keep: 1, grace: time.Nanosecond, docs: 2},
		{keep: 2, grace: time.Nanosecond, docs: 3},
		{keep: 3, grace: time.Nanosecond, docs: 4},
		{keep: 7, grace: time.Nanosecond, docs: 5},
		{keep: 1, docs: 5},
		{keep: 3, docs: 5},
	} {
		name := fmt.Sprintf("Keep=%d,grace=%v", tt.keep, tt.grace)
		if tt.grace == 0 {
			name = fmt.Sprintf("Keep=%d,default_grace", tt.keep)
		}
		t.Run(name, func(t *testing.T) {
			session := fmt.Sprintf("keep%d-%d", tt.keep, tt.grace)
			st := newStore(t, db, &mongostore.Options{Keep: tt.keep, RetiredGracePeriod: tt.grace})
			var ids []string
			for _, data := range saved {
				save(t, st, session, data)
				_, now := versions(t, st, session)
				ids = append(ids, now[0])
			}
			keep := tt.keep
			if keep == 0 {
				keep = remoteauth.DefaultKeep
			}
			want := slices.Clone(saved[max(0, len(saved)-keep):])
			slices.Reverse(want)
			got := checkVersionsEqual(t, st, session, want...)
			wantIDs := slices.Clone(ids[max(0, len(ids)-keep):])
			slices.Reverse(wantIDs)
			if !slices.Equal(got, wantIDs) {
				t.Errorf("Versions lists IDs %q, want %q: the IDs the archives had when they were saved", got, wantIDs)
			}
			for _, id := range ids[:max(0, len(ids)-keep)] {
				checkNotKept(t, st, session, id)
			}
			if n, err := db.Collection("whatsapp-"+session+".files").CountDocuments(t.Context(), bson.D{}); err != nil || n != int64(tt.docs) {
				t.Errorf("%d files documents (%v), want %d", n, err, tt.docs)
			}
			if n, err := db.Collection("whatsapp-"+session+".chunks").CountDocuments(t.Context(), bson.D{}); err != nil || n != int64(tt.docs) {
				t.Errorf("%d chunks (%v), want %d: one per revision left", n, err, tt.docs)
			}
		})
	}
}

// TestHistorySharedBucket: sessions that share a bucket never see each other's archives.
func TestHistorySharedBucket(t *testing.T) {
	db := testDB(t, newClient(t, serverURI(t)))
	st := newStore(t, db, &mongostore.Options{BucketName: mongostore.BucketPattern("shared")})
	a1, a2, b1 := pattern(21, 100), pattern(22, 200), pattern(23, 300)
	save(t, st, "a", a1)
	save(t, st, "a", a2)
	save(t, st, "a-b", b1)
	idsA := checkVersionsEqual(t, st, "a", a2, a1)
	idsB := checkVersionsEqual(t, st, "a-b", b1)
	for _, id := range idsA {
		checkNotKept(t, st, "a-b", id)
	}
	checkNotKept(t, st, "a", idsB[0])
	if err := st.Delete(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	checkVersionsEqual(t, st, "a")
	checkVersionsEqual(t, st, "a-b", b1)
}

// TestHistorySurvivesCut: a Save whose connection is cut, with new connections refused so that
// it cannot clean up, neither adds nor evicts a kept archive, even with eviction at once
// (a grace period of 1 ns); the next Save evicts the oldest as usual.
func TestHistorySurvivesCut(t *testing.T) {
	via, direct, p := proxied(t)
	st := newStore(t, via, &mongostore.Options{RetiredGracePeriod: time.Nanosecond, GracePeriod: time.Second})
	reader := newStore(t, direct, nil)
	const session = "RemoteAuth-cuthistory"
	v1, v2 := pattern(31, 1<<20+7), pattern(32, 700<<10)
	save(t, st, session, v1)
	save(t, st, session, v2)
	before := checkVersionsEqual(t, reader, session, v2, v1)

	p.CutAfter(20 << 20)
	if err := st.Save(t.Context(), session, bytes.NewReader(pattern(33, 40<<20))); err == nil {
		t.Fatal("Save through a connection cut after 20 MiB succeeded")
	}
	if after := checkVersionsEqual(t, reader, session, v2, v1); !slices.Equal(before, after) {
		t.Errorf("after the failed Save, Versions lists IDs %q, want %q", after, before)
	}
	p.Refuse(false)
	v3 := pattern(34, 3000)
	save(t, st, session, v3)
	if after := checkVersionsEqual(t, reader, session, v3, v2); len(after) == 2 && after[1] != before[0] {
		t.Errorf("after the next Save, the second archive has ID %s, want %s", after[1], before[0])
	}
	checkNotKept(t, reader, session, before[1])
}

// TestHistoryExistingData: data written before History existed (a revision retired by an older
// mongostore, with metadata.wwebstoreRetiredAt) and by wwebjs-mongo (several revisions named
// "<session>.zip") is listed as history without migration, and kept by the next Save.
func TestHistoryExistingData(t *testing.T) {
	db := testDB(t, newClient(t, serverURI(t)))
	st := newStore(t, db, &mongostore.Options{Keep: 3})
	const session = "RemoteAuth-old"
	bk := db.GridFSBucket(options.GridFSBucket().SetName("whatsapp-" + session))
	files := db.Collection("whatsapp-" + session + ".files")
	old := [][]byte{pattern(41, 1000), pattern(42, 2000), pattern(43, 3000)}
	var oldIDs []bson.ObjectID
	for _, data := range old {
		id, err := bk.UploadFromStream(t.Context(), session+".zip", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		oldIDs = append(oldIDs, id)
		time.Sleep(3 * time.Millisecond) // distinct uploadDates
	}
	// The oldest was retired by an older mongostore.
	if _, err := files.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: oldIDs[0]}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "filename", Value: session + ".zip.retired"}, {Key: "metadata.wwebstoreRetiredAt", Value: time.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	ids := checkVersionsEqual(t, st, session, old[2], old[1], old[0])
	if want := []string{oldIDs[2].Hex(), oldIDs[1].Hex(), oldIDs[0].Hex()}; !slices.Equal(ids, want) {
		t.Errorf("Versions lists IDs %q, want the ObjectIDs %q", ids, want)
	}
	next := pattern(44, 4000)
	save(t, st, session, next)
	checkVersionsEqual(t, st, session, next, old[2], old[1])
	if docs := findAll[filesDoc](t, files, bson.D{{Key: "filename", Value: session + ".zip"}}, nil); len(docs) != 1 {
		t.Errorf("%d revisions named %s.zip after a Save, want 1", len(docs), session)
	}
}

// TestHistoryAfterForeignDelete: what a deletion of the archive alone leaves (wwebjs-mongo's
// delete removes "<session>.zip" only; a Delete cut short after the archive) is not listed, and
// the next Save deletes it rather than making it the new archive's history. A retired revision
// newer than the archive (a foreign delete, then a Save by a process whose clock is behind) is
// not listed either, and deleted once the grace period is over.
func TestHistoryAfterForeignDelete(t *testing.T) {
	db := testDB(t, newClient(t, serverURI(t)))
	st := newStore(t, db, nil)
	const session = "RemoteAuth-foreign"
	files := db.Collection("whatsapp-" + session + ".files")
	save(t, st, session, pattern(51, 1000))
	save(t, st, session, pattern(52, 2000))
	_, ids := versions(t, st, session)
	bk := db.GridFSBucket(options.GridFSBucket().SetName("whatsapp-" + session))
	cur, err := bson.ObjectIDFromHex(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.Delete(t.Context(), cur); err != nil { // what wwebjs-mongo's delete does
		t.Fatal(err)
	}
	if ok, err := st.SessionExists(t.Context(), session); err != nil || ok {
		t.Errorf("SessionExists = %v, %v; want false", ok, err)
	}
	checkVersionsEqual(t, st, session)
	checkNotKept(t, st, session, ids[1])

	fresh := pattern(53, 3000)
	save(t, st, session, fresh)
	checkVersionsEqual(t, st, session, fresh)
	if n, err := files.CountDocuments(t.Context(), bson.D{}); err != nil || n != 1 {
		t.Errorf("%d files documents (%v), want only the new archive: the retired one is deleted", n, err)
	}

	// A retired revision an hour newer than the archive.
	future := bson.NewObjectID()
	if _, err := db.Collection("whatsapp-"+session+".chunks").InsertOne(t.Context(), bson.D{{Key: "files_id", Value: future}, {Key: "n", Value: int32(0)}, {Key: "data", Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := files.InsertOne(t.Context(), bson.D{{Key: "_id", Value: future}, {Key: "length", Value: int64(1)}, {Key: "chunkSize", Value: int32(255 << 10)},
		{Key: "uploadDate", Value: time.Now().Add(time.Hour)}, {Key: "filename", Value: session + ".zip.retired"}}); err != nil {
		t.Fatal(err)
	}
	checkVersionsEqual(t, st, session, fresh)
	checkNotKept(t, st, session, future.Hex())
	short := newStore(t, db, &mongostore.Options{RetiredGracePeriod: time.Nanosecond})
	save(t, short, session, fresh)
	if n, err := files.CountDocuments(t.Context(), bson.D{{Key: "_id", Value: future}}); err != nil || n != 0 {
		t.Errorf("the retired revision newer than the archive is still there (%d, %v) after a Save past its grace period", n, err)
	}
	checkVersionsEqual(t, st, session, fresh, fresh)
}
