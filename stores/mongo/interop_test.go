package mongostore_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/testenv"
	mongostore "github.com/wwebstore/wwebstore/stores/mongo"
)

// interopDir holds the Node.js side of TestInteropWwebjsMongo: wwebjs-mongo and mongoose, as
// pinned by its package-lock.json.
const interopDir = "testdata/interop"

// nodeReady returns the path of node once the interop directory's packages are installed
// (scripts/test runs npm ci there), or makes the test Unavailable.
func nodeReady(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "no node on PATH (scripts/test installs it): %v", err)
	}
	if _, err := os.Stat(filepath.Join(interopDir, "node_modules", "wwebjs-mongo")); err != nil {
		testenv.Unavailable(t, "wwebjs-mongo is not installed in %s (scripts/test stores/mongo runs npm ci there): %v", interopDir, err)
	}
	return node
}

// TestInteropWwebjsMongo runs wwebjs-mongo 1.1.0 (Node.js, through mongoose) against the same
// database as the store: each side reads what the other saved, sees the other's deletions, and
// finds the session where the other put it.
func TestInteropWwebjsMongo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	node := nodeReady(t)
	uri := serverURI(t)
	db := testDB(t, newClient(t, uri))
	st := newStore(t, db, &mongostore.Options{RetiredGracePeriod: time.Nanosecond})
	const session = "RemoteAuth-interop"
	script, err := filepath.Abs(filepath.Join(interopDir, "interop.js"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	js := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(node, append([]string{script, uri, db.Name()}, args...)...)
		cmd.Dir = work
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node interop.js %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	jsSave := func(data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(work, session+".zip"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		js("save", session)
	}
	jsExtract := func() []byte {
		t.Helper()
		path := filepath.Join(work, "out.zip")
		js("extract", session, path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	if got := js("exists", session); got != "false" {
		t.Fatalf("wwebjs-mongo sessionExists of a new session = %s", got)
	}
	a := pattern(1, 700<<10+9)
	jsSave(a)
	if ok, err := st.SessionExists(t.Context(), session); err != nil || !ok {
		t.Fatalf("SessionExists after wwebjs-mongo saved = %v, %v", ok, err)
	}
	if !bytes.Equal(extract(t, st, session), a) {
		t.Fatal("Extract does not give what wwebjs-mongo saved")
	}

	b := pattern(2, 1<<20+3)
	save(t, st, session, b)
	if got := js("exists", session); got != "true" {
		t.Fatalf("wwebjs-mongo sessionExists after Save = %s", got)
	}
	if !bytes.Equal(jsExtract(), b) {
		t.Fatal("wwebjs-mongo extract does not give what Save saved")
	}

	c := pattern(3, 300<<10)
	jsSave(c)
	if !bytes.Equal(extract(t, st, session), c) {
		t.Fatal("Extract does not give what wwebjs-mongo saved over the store's archive")
	}
	d := pattern(4, 2000)
	save(t, st, session, d) // retires c; b is now beyond Keep (2) and, with a 1 ns grace, deleted by the next Save
	save(t, st, session, d) // retires the first d; keeps it and c
	if !bytes.Equal(jsExtract(), d) {
		t.Fatal("wwebjs-mongo extract does not give the newest archive")
	}
	if kept, _ := versions(t, st, session); len(kept) != 2 || !bytes.Equal(kept[1], d) {
		t.Errorf("Versions after the store's Saves lists %d archives, want the two d", len(kept))
	}

	if err := st.Delete(t.Context(), session); err != nil {
		t.Fatal(err)
	}
	if got := js("exists", session); got != "false" {
		t.Errorf("wwebjs-mongo sessionExists after Delete = %s", got)
	}
	jsSave(a)
	js("delete", session)
	if ok, err := st.SessionExists(t.Context(), session); err != nil || ok {
		t.Errorf("SessionExists after wwebjs-mongo deleted = %v, %v", ok, err)
	}

	// The caveat of the README: wwebjs-mongo's delete leaves the kept (retired) revisions, and
	// its sessionExists counts them; the store does not list them, and its next Save deletes
	// them rather than keeping them as the new archive's history.
	save(t, st, session, b)
	save(t, st, session, c)
	js("delete", session)
	if got := js("exists", session); got != "true" {
		t.Errorf("wwebjs-mongo sessionExists after its delete, with a kept revision left = %s; the README's caveat says true", got)
	}
	if ok, err := st.SessionExists(t.Context(), session); err != nil || ok {
		t.Errorf("SessionExists after wwebjs-mongo deleted the archive = %v, %v; want false", ok, err)
	}
	checkVersionsEqual(t, st, session)
	save(t, st, session, d)
	checkVersionsEqual(t, st, session, d)
	if got := js("exists", session); got != "true" || !bytes.Equal(jsExtract(), d) {
		t.Errorf("wwebjs-mongo after the next Save: sessionExists %s, and its extract differs", got)
	}
}
