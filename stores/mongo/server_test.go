package mongostore_test

// Real MongoDB-wire servers for the tests: the one WWEBSTORE_MONGO_URL names, or a container
// started by testcontainers-go from WWEBSTORE_MONGO_IMAGE (default mongo:8; FerretDB images on
// machines without MongoDB). Each test gets a database of its own, dropped when it ends.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/internal/testenv"
	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

const (
	envURL       = "WWEBSTORE_MONGO_URL"
	envImage     = "WWEBSTORE_MONGO_IMAGE"
	defaultImage = "mongo:8"
)

const howToRun = "run scripts/test stores/mongo (it sets up a container engine and image), or set " + envURL +
	"=mongodb://127.0.0.1:27017/ to test against a server of yours (each test uses and drops a database wwebstore_test_…)"

func image() string {
	if img := os.Getenv(envImage); img != "" {
		return img
	}
	return defaultImage
}

var engine struct {
	once sync.Once
	err  error
}

// engineErr reports whether a container engine answers, checking once per test binary.
func engineErr() error {
	engine.once.Do(func() {
		defer func() {
			if r := recover(); r != nil { // testcontainers panics on some broken setups
				engine.err = fmt.Errorf("%v", r)
			}
		}()
		p, err := testcontainers.ProviderDefault.GetProvider()
		if err != nil {
			engine.err = err
			return
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		engine.err = p.Health(ctx)
	})
	return engine.err
}

// shared is the container that the tests of one binary share (each with its own database).
var shared struct {
	mu  sync.Mutex
	uri string
	ctr testcontainers.Container
}

// serverURI returns the connection string of a real server, without a database: the
// WWEBSTORE_MONGO_URL's, or that of a container started once for the whole test binary and
// removed by TestMain.
func serverURI(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(envURL); u != "" {
		return u
	}
	if err := engineErr(); err != nil {
		testenv.Unavailable(t, "no MongoDB: %s is not set and no container engine answers (%v); %s", envURL, err, howToRun)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.uri != "" {
		return shared.uri
	}
	ctx := context.Background()
	img := image()
	// The official image's log says "Waiting for connections"; FerretDB's says "Listening on"
	// and has no shell for the mongo module's readiness checks.
	var ready wait.Strategy = wait.ForAll(wait.ForLog("Waiting for connections"), wait.ForListeningPort("27017/tcp"))
	if strings.Contains(strings.ToLower(img), "ferretdb") {
		ready = wait.ForListeningPort("27017/tcp")
	}
	start := time.Now()
	ctr, err := testcontainers.Run(ctx, img,
		testcontainers.WithExposedPorts("27017/tcp"),
		testcontainers.WithWaitStrategy(ready),
	)
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		t.Fatalf("starting a MongoDB container from %s (set %s to use another): %v", img, envImage, err)
	}
	host, err := ctr.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port, err := ctr.MappedPort(ctx, "27017/tcp")
	if err != nil {
		t.Fatal(err)
	}
	shared.ctr = ctr
	shared.uri = "mongodb://" + net.JoinHostPort(host, port.Port()) + "/"
	t.Logf("MongoDB-wire server from %s ready in %v at %s", img, time.Since(start).Round(time.Millisecond), shared.uri)
	return shared.uri
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.ctr != nil {
		_ = testcontainers.TerminateContainer(shared.ctr)
	}
	os.Exit(code)
}

// hostPort returns the first host:port of a mongodb:// connection string.
func hostPort(t testing.TB, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "mongodb" {
		t.Fatalf("%s: want a mongodb:// URL for this test (%v)", envURL, err)
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
