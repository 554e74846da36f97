package mongostore_test

import (
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

// TestListBuckets checks that List reports the sessions of its own bucket layout only: not those
// of a store with another BucketName in the same database, nor GridFS files of other
// applications, nor retired revisions; and that an overwritten session shows its newest
// revision. (The conformance suite checks List itself.)
func TestListBuckets(t *testing.T) {
	db := testDB(t, newClient(t, serverURI(t)))
	own := newStore(t, db, nil)
	shared := newStore(t, db, &mongostore.Options{BucketName: mongostore.BucketPattern("shared")})
	save(t, own, "RemoteAuth-a", pattern(1, 10))
	save(t, own, "RemoteAuth-b", pattern(2, 300<<10))
	save(t, own, "RemoteAuth-b", pattern(3, 20)) // retires the first revision
	save(t, shared, "c", pattern(4, 30))
	foreign := []struct {
		coll string
		doc  bson.D
	}{
		{"photos.files", bson.D{{Key: "filename", Value: "x.zip"}, {Key: "length", Value: 1}, {Key: "chunkSize", Value: 1}, {Key: "uploadDate", Value: time.Now()}}},
		{"whatsapp-RemoteAuth-a.files", bson.D{{Key: "filename", Value: 42}, {Key: "length", Value: 1}, {Key: "chunkSize", Value: 1}, {Key: "uploadDate", Value: time.Now()}}},
	}
	for _, f := range foreign {
		if _, err := db.Collection(f.coll).InsertOne(t.Context(), f.doc); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name  string
		st    *mongostore.Store
		names []string
		sizes []int64
	}{
		{"default buckets", own, []string{"RemoteAuth-a", "RemoteAuth-b"}, []int64{10, 20}},
		{"shared bucket", shared, []string{"c"}, []int64{30}},
	} {
		list, err := tt.st.List(t.Context())
		if err != nil {
			t.Fatalf("%s: List: %v", tt.name, err)
		}
		var names []string
		var sizes []int64
		for _, info := range list {
			names = append(names, info.Name)
			sizes = append(sizes, info.Size)
		}
		if !slices.Equal(names, tt.names) || !slices.Equal(sizes, tt.sizes) {
			t.Errorf("%s: List gives sessions %q of sizes %d, want %q of sizes %d", tt.name, names, sizes, tt.names, tt.sizes)
		}
	}
}
