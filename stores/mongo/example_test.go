package mongostore_test

import (
	"context"
	"log"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

func ExampleNew() {
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://localhost:27017"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(ctx)
	// The layout of wwebjs-mongo: bucket "whatsapp-<session>", file "<session>.zip".
	st, err := mongostore.New(ctx, client.Database("whatsapp"), nil)
	if err != nil {
		log.Fatal(err)
	}
	_ = st // remoteauth.NewSession(st, …)
}

func ExampleBucketPattern() {
	// All sessions in one bucket "sessions", files "<session>.zip" telling them apart.
	_ = &mongostore.Options{BucketName: mongostore.BucketPattern("sessions")}
	// Or a bucket per session with another prefix.
	_ = &mongostore.Options{BucketName: mongostore.BucketPattern("myapp-{session}")}
}

func ExampleStore_Versions() {
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://localhost:27017"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(ctx)
	// Keep the archive and the two before it ("?keep=3" in a URL).
	st, err := mongostore.New(ctx, client.Database("whatsapp"), &mongostore.Options{Keep: 3})
	if err != nil {
		log.Fatal(err)
	}
	versions, err := st.Versions(ctx, "RemoteAuth-alice")
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range versions { // newest first; the IDs are the revisions' ObjectIDs
		log.Printf("%s: %d bytes saved at %v", v.ID, v.Size, v.Saved)
	}
}
