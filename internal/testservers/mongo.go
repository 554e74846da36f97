package testservers

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

var mongoEngine = register(&engine{
	name:         "mongo",
	title:        "MongoDB",
	envURL:       "WWEBSTORE_MONGO_URL",
	envImage:     "WWEBSTORE_MONGO_IMAGE",
	defaultImage: "mongo:8",
	exampleURL:   "mongodb://127.0.0.1:27017/",
	start: func(ctx context.Context, image string) (testcontainers.Container, string, error) {
		// The official image's log says "Waiting for connections"; FerretDB's says "Listening
		// on", and it has no shell for the mongo module's readiness checks.
		var ready wait.Strategy = wait.ForAll(wait.ForLog("Waiting for connections"), wait.ForListeningPort("27017/tcp")).
			WithStartupTimeoutDefault(startTimeout)
		if strings.Contains(strings.ToLower(image), "ferretdb") {
			ready = wait.ForListeningPort("27017/tcp").WithStartupTimeout(startTimeout)
		}
		ctr, err := testcontainers.Run(ctx, image, testcontainers.WithExposedPorts("27017/tcp"), testcontainers.WithWaitStrategy(ready))
		if ctr == nil { // a typed nil in the interface would look like a container
			return nil, "", err
		}
		if err != nil {
			return ctr, "", err
		}
		ep, err := ctr.PortEndpoint(ctx, "27017/tcp", "mongodb")
		if err != nil {
			return ctr, "", err
		}
		return ctr, ep + "/", nil
	},
})

// MongoURL returns the connection string of the MongoDB-wire server that the tests of this binary
// share: WWEBSTORE_MONGO_URL, or mongodb://HOST:PORT/ of the shared container, started on the
// first call. Without a server, the test is unavailable.
func MongoURL(t testing.TB) string {
	t.Helper()
	return mongoEngine.serverURL(t)
}

// Mongo returns the shared MongoDB-wire server with a database of its own, wwebstore_test_<id>
// (the URL's path); when the test ends, the database is dropped.
func Mongo(t testing.TB) Server {
	t.Helper()
	base := MongoURL(t)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
		t.Fatalf("testservers: %s is not a mongodb:// URL; write it as %s", mongoEngine.source(), mongoEngine.exampleURL)
	}
	db := "wwebstore_test_" + randomID()
	u.Path = "/" + db
	client, err := mongo.Connect(options.Client().ApplyURI(base).SetServerSelectionTimeout(opTimeout))
	if err != nil {
		t.Fatalf("testservers: %s: %v", mongoEngine.source(), err)
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		t.Fatalf("testservers: %s does not answer ping: %v; start it, or unset %s", mongoEngine.source(), err, mongoEngine.envURL)
	}
	t.Cleanup(func() {
		ctx, cancel := opContext()
		defer cancel()
		defer func() { _ = client.Disconnect(ctx) }()
		if err := client.Database(db).Drop(ctx); err != nil {
			t.Errorf("testservers: dropping database %s on %s: %v", db, mongoEngine.source(), err)
		}
	})
	return Server{Name: mongoEngine.name, URL: u.String(), Env: map[string]string{}}
}
