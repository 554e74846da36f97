package testservers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/wwebstore/wwebstore/internal/testenv"
)

// Server is a store namespace private to one test.
type Server struct {
	// Name is the engine: "redis", "postgres", "mongo" or "s3".
	Name string
	// URL opens the store with remoteauth.OpenStore once the store package is imported, in a
	// namespace of its own (see the package documentation), removed or emptied when the test
	// ends. For example redis://127.0.0.1:PORT?prefix=wwebstore-test%3A…%3A,
	// postgres://postgres:postgres@127.0.0.1:PORT/postgres?schema=wwebstore_test_…&sslmode=disable,
	// mongodb://127.0.0.1:PORT/wwebstore_test_…,
	// s3://wwebstore-test-…?endpoint=http%3A%2F%2F127.0.0.1%3APORT&path_style=true&region=us-east-1.
	URL string
	// Env is the environment that URL needs: for S3, AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY, with AWS_SESSION_TOKEN and AWS_PROFILE empty (see S3); empty (not
	// nil) for the others.
	Env map[string]string
}

// Setenv sets every variable of s.Env with t.Setenv, for the rest of the test (t.Setenv
// restores them). Like t.Setenv, it must not be called from a parallel test.
func (s Server) Setenv(t testing.TB) {
	t.Helper()
	for k, v := range s.Env {
		t.Setenv(k, v)
	}
}

// All returns the four servers, each in a namespace of its own: Redis, Postgres, Mongo and S3,
// in that order. If one is unavailable, the test is, as with each of them alone.
func All(t testing.TB) []Server {
	t.Helper()
	return []Server{Redis(t), Postgres(t), Mongo(t), S3(t)}
}

// mainRuns is set by Run: the containers started from then on will be removed.
var mainRuns atomic.Bool

// Main is what a test package that uses servers calls from TestMain: it runs the tests (Run),
// then exits with their status (os.Exit).
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests (m.Run), then removes the containers that they started, and returns the
// exit status for os.Exit: m.Run's, or 1 if a container could not be removed. It is Main for a
// TestMain that has more to do after the tests.
func Run(m *testing.M) int {
	mainRuns.Store(true)
	code := m.Run()
	if err := removeContainers(); err != nil {
		fmt.Fprintf(os.Stderr, "testservers: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// containers are the containers started by this binary, for Run to remove.
var containers struct {
	sync.Mutex
	list []testcontainers.Container
}

func removeContainers() error {
	containers.Lock()
	defer containers.Unlock()
	var errs []error
	for _, c := range containers.list {
		if err := testcontainers.TerminateContainer(c); err != nil {
			errs = append(errs, fmt.Errorf("removing container %s: %w (remove it with podman rm -f or docker rm -f)", c.GetContainerID(), err))
		}
	}
	containers.list = nil
	return errors.Join(errs...)
}

// Timeouts; the package documentation names them.
const (
	startTimeout       = 2 * time.Minute  // a container's start, until it answers
	opTimeout          = 30 * time.Second // the creation, or the removal, of a namespace
	engineCheckTimeout = 10 * time.Second // the container engine's health check
)

// opContext returns a context for the creation or the removal of a namespace. It does not derive
// from the test's context, which has ended when cleanups run.
func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

var engineCheck struct {
	once sync.Once
	err  error
}

// ContainerEngine returns nil if testcontainers-go reaches a container engine, or why it does
// not. The engine is checked once per test binary.
func ContainerEngine() error {
	engineCheck.once.Do(func() {
		defer func() {
			if r := recover(); r != nil { // testcontainers panics on some broken setups
				engineCheck.err = fmt.Errorf("testcontainers-go: %v", r)
			}
		}()
		p, err := testcontainers.ProviderDefault.GetProvider()
		if err != nil {
			engineCheck.err = err
			return
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), engineCheckTimeout)
		defer cancel()
		engineCheck.err = p.Health(ctx)
	})
	return engineCheck.err
}

// An engine is one of the four kinds of server, and its container shared by the binary's tests.
type engine struct {
	name         string // Server.Name
	title        string // for messages: "Redis"
	envURL       string // WWEBSTORE_<X>_URL
	envImage     string // WWEBSTORE_<X>_IMAGE
	defaultImage string
	exampleURL   string // a value of envURL, for messages
	// start starts a container from image and returns it (also when it fails, if it was
	// created) with the server's endpoint once it answers.
	start func(ctx context.Context, image string) (testcontainers.Container, string, error)

	mu       sync.Mutex
	started  bool // start has been tried
	endpoint string
	err      error
}

var engines = map[string]*engine{}

func register(e *engine) *engine {
	engines[e.name] = e
	return e
}

// Image returns the image that the container of the named engine ("redis", "postgres", "mongo"
// or "s3") is started from: WWEBSTORE_<X>_IMAGE, or the default (redis:7, postgres:17, mongo:8,
// minio/minio). Store tests start their own extra containers (a Redis Cluster, say) from it.
// It panics for another name.
func Image(name string) string {
	e, ok := engines[name]
	if !ok {
		panic(fmt.Sprintf("testservers.Image(%q): want redis, postgres, mongo or s3", name))
	}
	return e.image()
}

func (e *engine) image() string {
	if img := os.Getenv(e.envImage); img != "" {
		return img
	}
	return e.defaultImage
}

// fromEnv reports whether the server is the one that WWEBSTORE_<X>_URL names.
func (e *engine) fromEnv() bool { return os.Getenv(e.envURL) != "" }

// source describes the server for messages: the variable that names it, or the container's image.
func (e *engine) source() string {
	if e.fromEnv() {
		return e.title + " of " + e.envURL
	}
	return e.title + " in a container from " + e.image()
}

// serverURL returns the server's endpoint: WWEBSTORE_<X>_URL, or the shared container's, which
// it starts on the first call. Without a container engine, the test is unavailable.
func (e *engine) serverURL(t testing.TB) string {
	t.Helper()
	if !mainRuns.Load() {
		t.Fatalf("testservers: the test binary does not run its tests through testservers.Main, which removes the containers: " +
			"add func TestMain(m *testing.M) { testservers.Main(m) } to a _test.go file of the package")
	}
	if u := os.Getenv(e.envURL); u != "" {
		return u
	}
	if err := ContainerEngine(); err != nil {
		testenv.Unavailable(t, "no %s: %s is not set and no container engine answers (%v); run scripts/test with this module "+
			"(it sets up a container engine and the images), or set %s=%s to test against a server of yours (see internal/testservers/README.md)",
			e.title, e.envURL, err, e.envURL, e.exampleURL)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		e.started = true
		e.endpoint, e.err = e.startShared(t)
	}
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.endpoint
}

// startShared starts the container that the tests of the binary share, trying twice.
func (e *engine) startShared(t testing.TB) (string, error) {
	t.Helper()
	img := e.image()
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		begin := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		var (
			ctr      testcontainers.Container
			endpoint string
		)
		ctr, endpoint, err = e.start(ctx, img)
		cancel()
		if ctr != nil {
			containers.Lock()
			containers.list = append(containers.list, ctr)
			containers.Unlock()
		}
		if err == nil {
			t.Logf("testservers: %s ready in %v at %s, shared by the tests of this binary", e.source(), time.Since(begin).Round(time.Millisecond), endpoint)
			return endpoint, nil
		}
		t.Logf("testservers: starting %s, attempt %d: %v", e.source(), attempt, err)
	}
	return "", fmt.Errorf("testservers: starting %s: %w (set %s to use another image, or %s to use a server of yours)",
		e.source(), err, e.envImage, e.envURL)
}

// randomID returns 12 random hexadecimal digits, for namespace names.
func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// withQuery returns rawURL with the query parameter key set to value.
func withQuery(rawURL, key, value string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
