package reliability

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"

	_ "github.com/wwebstore/wwebstore/stores/file" // file://
	_ "github.com/wwebstore/wwebstore/stores/mongo"
	_ "github.com/wwebstore/wwebstore/stores/postgres"
	_ "github.com/wwebstore/wwebstore/stores/redis"
	_ "github.com/wwebstore/wwebstore/stores/s3"
)

// TestMain runs the tests through testservers.Main, which removes the containers at the end,
// unless the binary was started as a helper process (see helperEnv): then it is that helper.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	testservers.Main(m)
}

// realStores are the stores of internal/testservers, in its order.
var realStores = []struct {
	name string
	open func(testing.TB) testservers.Server
}{
	{"redis", testservers.Redis},
	{"postgres", testservers.Postgres},
	{"mongo", testservers.Mongo},
	{"s3", testservers.S3},
}

// fileServer is the file store in a directory of the test: a Server like those of testservers.
func fileServer(t testing.TB) testservers.Server {
	return testservers.Server{Name: "file", URL: "file://" + filepath.ToSlash(t.TempDir()), Env: map[string]string{}}
}

// forEachStore runs f in a subtest per store, each with a namespace of its own: the file store
// first when withFile is set, then the four real stores.
func forEachStore(t *testing.T, withFile bool, f func(t *testing.T, srv testservers.Server)) {
	t.Helper()
	if withFile {
		t.Run("file", func(t *testing.T) { f(t, fileServer(t)) })
	}
	for _, s := range realStores {
		t.Run(s.name, func(t *testing.T) { f(t, s.open(t)) })
	}
}

// openStore opens srv's store with srv.Env in the environment (S3's keys), and closes it when the
// test ends if it has a Close method.
func openStore(t testing.TB, srv testservers.Server, rawURL string) remoteauth.Store {
	t.Helper()
	srv.Setenv(t)
	st, err := remoteauth.OpenStore(t.Context(), rawURL)
	if err != nil {
		t.Fatalf("opening %s store %s: %v", srv.Name, rawURL, err)
	}
	closeStore(t, st)
	return st
}

// closeStore closes st when the test ends, if it can be closed (the Redis, PostgreSQL and MongoDB
// stores opened from a URL own a client).
func closeStore(t testing.TB, st remoteauth.Store) {
	if c, ok := st.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
}

// A tree is what a profile holds, for byte-for-byte comparisons: each regular file's
// slash-separated path, relative to the profile, mapped to its size and SHA-256.
type tree map[string]string

// hashTree returns the tree of the files under dir, or only of those under the given
// slash-separated subdirectories of dir when under is not empty. Anything but a regular file or
// a directory is an error.
func hashTree(dir string, under ...string) (tree, error) {
	roots := []string{dir}
	if len(under) > 0 {
		roots = roots[:0]
		for _, u := range under {
			roots = append(roots, filepath.Join(dir, filepath.FromSlash(u)))
		}
	}
	tr := tree{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			if !d.Type().IsRegular() {
				return fmt.Errorf("%s is a %v, not a regular file", p, d.Type())
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			tr[filepath.ToSlash(rel)] = fmt.Sprintf("%d:%s", len(b), hex.EncodeToString(sum[:]))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return tr, nil
}

// digest returns one SHA-256 of the whole tree, for a helper process to report what it restored.
func (tr tree) digest() string {
	h := sha256.New()
	for _, p := range slices.Sorted(maps.Keys(tr)) {
		fmt.Fprintf(h, "%s\x00%s\n", p, tr[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// diff describes how got differs from want, for test failures: at most a few paths.
func (want tree) diff(got tree) string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(want)) {
		switch g, ok := got[p]; {
		case !ok:
			out = append(out, "missing "+p)
		case g != want[p]:
			out = append(out, "differs "+p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			out = append(out, "extra "+p)
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return strings.Join(out, "; ")
}

// states generates the profile states of a test on demand and remembers the tree of each
// state's kept directories: state k is profilegen's profile of Size size and Seed k.
type states struct {
	size int64
	dir  string // scratch space

	mu    sync.Mutex
	trees map[int64]tree
}

func newStates(t testing.TB, size int64) *states {
	return &states{size: size, dir: t.TempDir(), trees: map[int64]tree{}}
}

// generate writes state k into dir, which must be missing or empty.
func (s *states) generate(ctx context.Context, dir string, k int64) error {
	_, err := profilegen.Generate(ctx, dir, profilegen.Options{Size: s.size, Seed: k})
	return err
}

// tree returns the tree of state k's kept directories: what a restore of its backup holds.
func (s *states) tree(t testing.TB, k int64) tree {
	t.Helper()
	s.mu.Lock()
	tr, ok := s.trees[k]
	s.mu.Unlock()
	if ok {
		return tr
	}
	dir := filepath.Join(s.dir, fmt.Sprintf("state-%d", k))
	if err := s.generate(t.Context(), dir, k); err != nil {
		t.Fatalf("generating state %d: %v", k, err)
	}
	defer os.RemoveAll(dir)
	tr, err := hashTree(dir, profilegen.KeptDirs()...)
	if err != nil {
		t.Fatalf("hashing state %d: %v", k, err)
	}
	s.mu.Lock()
	s.trees[k] = tr
	s.mu.Unlock()
	return tr
}

// which returns the state among candidates whose kept tree is got, or -1.
func (s *states) which(t testing.TB, got tree, candidates ...int64) int64 {
	t.Helper()
	for _, k := range candidates {
		if maps.Equal(s.tree(t, k), got) {
			return k
		}
	}
	return -1
}

// listDir returns the names in dir, sorted, for checks that nothing was left behind.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}
