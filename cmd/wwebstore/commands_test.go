package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// exerciseStore runs every command but cp against the store at url, and checks what each does
// to the store and to the disk.
func exerciseStore(t *testing.T, h *harness, url string) {
	profile, want := newProfile(t, "alice", 1)
	const session = "RemoteAuth-alice"

	var b backupResult
	decode(t, h.mustRun(t, exitOK, "backup", "--store", url, "--dir", profile, "--json"), &b)
	if b.Session != session || b.Files != len(want) || b.ArchiveSize <= 0 {
		t.Fatalf("backup: %+v; want session %s, %d files and an archive", b, session, len(want))
	}

	if r := h.mustRun(t, exitOK, "exists", "--store", url, "--session", session); r.stdout != "yes\n" {
		t.Errorf("exists: %s", r)
	}
	if r := h.mustRun(t, exitNotFound, "exists", "--store", url, "--session", "RemoteAuth-bob"); r.stdout != "no\n" {
		t.Errorf("exists of a missing session: %s", r)
	}
	var e existsResult
	decode(t, h.mustRun(t, exitNotFound, "exists", "--store", url, "--session", "RemoteAuth-bob", "--json"), &e)
	if e.Exists || e.Session != "RemoteAuth-bob" {
		t.Errorf("exists --json of a missing session: %+v", e)
	}

	var ls lsResult
	decode(t, h.mustRun(t, exitOK, "ls", "--store", url, "--json"), &ls)
	if len(ls.Sessions) != 1 || ls.Sessions[0].Name != session || ls.Sessions[0].Size != b.ArchiveSize {
		t.Errorf("ls: %+v; want %s alone, of %d bytes", ls.Sessions, session, b.ArchiveSize)
	}
	if r := h.mustRun(t, exitOK, "ls", "--store", url); !strings.Contains(r.stdout, session) || !strings.Contains(r.stdout, "1 session,") {
		t.Errorf("ls: %s", r)
	}

	var v verifyResult
	decode(t, h.mustRun(t, exitOK, "verify", "--store", url, "--session", session, "--json"), &v)
	if !v.OK || v.Files != len(want) || v.ArchiveSize != b.ArchiveSize || len(v.SHA256) != 64 {
		t.Errorf("verify: %+v", v)
	}
	var in inspectResult
	decode(t, h.mustRun(t, exitOK, "inspect", "--store", url, "--session", session, "--json"), &in)
	files := 0
	for _, e := range in.Entries {
		if !strings.HasPrefix(e.Name, "Default/IndexedDB/") && !strings.HasPrefix(e.Name, "Default/Local Storage/") {
			t.Errorf("inspect: entry %q is outside the kept directories", e.Name)
		}
		if e.Method != "stored" && e.Method != "deflated" {
			t.Errorf("inspect: entry %q is %s", e.Name, e.Method)
		}
		if !strings.HasSuffix(e.Name, "/") {
			files++
		}
	}
	if files != len(want) || in.Files != len(want) || in.SHA256 != v.SHA256 {
		t.Errorf("inspect: %d file entries, Files %d, sha256 %s; want %d files and verify's %s", files, in.Files, in.SHA256, len(want), v.SHA256)
	}

	restored := filepath.Join(t.TempDir(), session)
	var rr profileResult
	decode(t, h.mustRun(t, exitOK, "restore", "--store", url, "--session", session, "--dir", restored, "--json"), &rr)
	got, err := hashTree(restored, remoteauth.DefaultKeptDirs)
	if err != nil {
		t.Fatal(err)
	}
	if err := compareTrees(want, got); err != nil {
		t.Errorf("restore: the restored profile differs: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "RemoteAuth-bob")
	if r := h.mustRun(t, exitNotFound, "restore", "--store", url, "--session", "RemoteAuth-bob", "--dir", missing); !strings.Contains(r.stderr, `no session "RemoteAuth-bob"`) {
		t.Errorf("restore of a missing session: %s", r)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("restore of a missing session created %s", missing)
	}

	if r := h.run(t, "n\n", "rm", "--store", url, "--session", session); r.code != exitFailure || !strings.Contains(r.stderr, "not confirmed") {
		t.Errorf("rm answered no: %s", r)
	}
	h.mustRun(t, exitOK, "exists", "--store", url, "--session", session)
	if r := h.run(t, "y\n", "rm", "--store", url, "--session", session); r.code != exitOK {
		t.Errorf("rm answered yes: %s", r)
	}
	h.mustRun(t, exitNotFound, "exists", "--store", url, "--session", session)
	h.mustRun(t, exitOK, "backup", "--store", url, "--dir", profile)
	h.mustRun(t, exitOK, "rm", "--store", url, "--session", session, "--yes")
	h.mustRun(t, exitNotFound, "rm", "--store", url, "--session", session, "--yes")
	decode(t, h.mustRun(t, exitOK, "ls", "--store", url, "--json"), &ls)
	if len(ls.Sessions) != 0 {
		t.Errorf("ls after rm: %+v", ls.Sessions)
	}
}

func TestCommandsEmbeddedStores(t *testing.T) {
	for _, tt := range []struct{ name, url string }{
		{"file", "file://" + t.TempDir()},
		{"mem", "mem://"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exerciseStore(t, &harness{}, tt.url)
		})
	}
}

// TestCommandsRealStores runs every command against each real store that testservers starts.
func TestCommandsRealStores(t *testing.T) {
	for _, srv := range testservers.All(t) {
		t.Run(srv.Name, func(t *testing.T) {
			srv.Setenv(t)
			exerciseStore(t, &harness{}, srv.URL)
		})
	}
}

// archiveSum returns the size and SHA-256 of session's archive in the store at url, read
// directly through the store.
func archiveSum(t *testing.T, url, session string) (int64, [sha256.Size]byte) {
	t.Helper()
	st, err := remoteauth.OpenStore(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := st.(io.Closer); ok {
		defer c.Close()
	}
	h := sha256.New()
	var n countWriter
	if err := st.Extract(t.Context(), session, io.MultiWriter(h, &n)); err != nil {
		t.Fatalf("Extract(%q) from %s: %v", session, url, err)
	}
	return n.n, [sha256.Size]byte(h.Sum(nil))
}

// checkCopied checks that session's archive is the same, byte for byte, in both stores.
func checkCopied(t *testing.T, from, to, session string) {
	t.Helper()
	n1, sum1 := archiveSum(t, from, session)
	n2, sum2 := archiveSum(t, to, session)
	if n1 != n2 || sum1 != sum2 || n1 == 0 {
		t.Errorf("session %s: the source holds %d bytes (SHA-256 %x), the destination %d bytes (%x)", session, n1, sum1, n2, sum2)
	}
}

func TestCpEmbeddedStores(t *testing.T) {
	var h harness
	from, to := "file://"+t.TempDir(), "file://"+t.TempDir()
	for i, id := range []string{"a", "b"} {
		profile, _ := newProfile(t, id, int64(i+1))
		h.mustRun(t, exitOK, "backup", "--store", from, "--dir", profile)
	}
	var cp cpResult
	decode(t, h.mustRun(t, exitOK, "cp", "--from", from, "--to", to, "--session", "RemoteAuth-a", "--json"), &cp)
	if len(cp.Sessions) != 1 || cp.Sessions[0].Name != "RemoteAuth-a" || cp.Sessions[0].Error != "" {
		t.Errorf("cp --session: %+v", cp)
	}
	checkCopied(t, from, to, "RemoteAuth-a")

	// --all copies b and refuses to replace a; --overwrite replaces it.
	r := h.mustRun(t, exitFailure, "cp", "--from", from, "--to", to, "--all")
	if !strings.Contains(r.stderr, "pass --overwrite") || !strings.Contains(r.stdout, "1 of 2 sessions copied") {
		t.Errorf("cp --all onto an existing session: %s", r)
	}
	checkCopied(t, from, to, "RemoteAuth-b")
	h.mustRun(t, exitOK, "cp", "--from", from, "--to", to, "--all", "--overwrite")
	if r := h.mustRun(t, exitNotFound, "cp", "--from", from, "--to", to, "--session", "RemoteAuth-c"); !strings.Contains(r.stderr, "the source has no such session") {
		t.Errorf("cp of a missing session: %s", r)
	}
	h.mustRun(t, exitOK, "cp", "--from", from, "--to", "mem://", "--all")
}

// TestCpBetweenRealStores copies a session from each real store to the next (Redis to
// PostgreSQL, PostgreSQL to MongoDB, MongoDB to S3, S3 to Redis), and all sessions of one to
// another, and checks every copy byte for byte through the stores themselves.
func TestCpBetweenRealStores(t *testing.T) {
	servers := testservers.All(t)
	for _, srv := range servers {
		srv.Setenv(t)
	}
	var h harness
	for i, from := range servers {
		to := servers[(i+1)%len(servers)]
		t.Run(from.Name+"-to-"+to.Name, func(t *testing.T) {
			profile, _ := newProfile(t, "cp-"+from.Name, int64(i+10))
			session := filepath.Base(profile)
			h.mustRun(t, exitOK, "backup", "--store", from.URL, "--dir", profile)
			h.mustRun(t, exitOK, "cp", "--from", from.URL, "--to", to.URL, "--session", session)
			checkCopied(t, from.URL, to.URL, session)
		})
	}
	t.Run("all", func(t *testing.T) {
		from, to := servers[0], servers[3]
		var ls lsResult
		decode(t, h.mustRun(t, exitOK, "ls", "--store", from.URL, "--json"), &ls)
		var cp cpResult
		decode(t, h.mustRun(t, exitOK, "cp", "--from", from.URL, "--to", to.URL, "--all", "--overwrite", "--json"), &cp)
		var names []string
		for _, s := range cp.Sessions {
			names = append(names, s.Name)
			checkCopied(t, from.URL, to.URL, s.Name)
		}
		if len(names) != len(ls.Sessions) || len(names) < 2 {
			t.Errorf("cp --all copied %q; the source lists %+v", names, ls.Sessions)
		}
	})
}

// TestBench runs bench against the embedded file store and each real store, and checks that it
// measured both phases and left no session behind.
func TestBench(t *testing.T) {
	stores := []testservers.Server{{Name: "file", URL: "file://" + t.TempDir()}}
	if !testing.Short() {
		stores = append(stores, testservers.All(t)...)
	}
	for _, srv := range stores {
		t.Run(srv.Name, func(t *testing.T) {
			srv.Setenv(t)
			var h harness
			var b benchResult
			decode(t, h.mustRun(t, exitOK, "bench", "--store", srv.URL, "--size", "4MiB", "--json"), &b)
			for name, p := range map[string]benchPhase{"backup": b.Backup, "restore": b.Restore} {
				if p.Seconds <= 0 || p.MiBPerSecond <= 0 || p.ArchiveSize <= 0 || p.Files <= 0 {
					t.Errorf("%s: %+v", name, p)
				}
			}
			if b.Verified != b.Backup.Files || b.Restore.Files != b.Backup.Files {
				t.Errorf("bench verified %d files; backup %d, restore %d", b.Verified, b.Backup.Files, b.Restore.Files)
			}
			h.mustRun(t, exitNotFound, "exists", "--store", srv.URL, "--session", DefaultBenchSession)

			// A session of that name is not replaced without --overwrite.
			profile, _ := newProfile(t, "wwebstore-bench", 1)
			h.mustRun(t, exitOK, "backup", "--store", srv.URL, "--dir", profile)
			if r := h.mustRun(t, exitFailure, "bench", "--store", srv.URL, "--size", "1MiB"); !strings.Contains(r.stderr, "pass --overwrite") {
				t.Errorf("bench onto an existing session: %s", r)
			}
			h.mustRun(t, exitOK, "exists", "--store", srv.URL, "--session", DefaultBenchSession)
		})
	}
}

// TestLsWithoutLister checks the message of ls and cp --all for a store that cannot list: one
// that does not implement remoteauth.Lister, and a wrapper whose List says
// errors.ErrUnsupported.
func TestLsWithoutLister(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(remoteauth.Store) remoteauth.Store
		says string
	}{
		{"NotALister", func(st remoteauth.Store) remoteauth.Store { return storeOnly{st} }, "does not implement remoteauth.Lister"},
		{"ListUnsupported", func(st remoteauth.Store) remoteauth.Store { return unsupportedLister{st} }, "wraps a store that cannot list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{wrap: tc.wrap}
			for _, args := range [][]string{
				{"ls", "--store", "mem://"},
				{"cp", "--from", "mem://", "--to", "file://" + t.TempDir(), "--all"},
			} {
				r := h.mustRun(t, exitFailure, args...)
				if !strings.Contains(r.stderr, tc.says) || !strings.Contains(r.stderr, "wwebstore exists --session NAME") {
					t.Errorf("%s of a store that cannot list: %s", args[0], r)
				}
			}
		})
	}
}

// storeOnly hides every method of a store but the Store interface's.
type storeOnly struct{ remoteauth.Store }

// unsupportedLister is a wrapper store of one that cannot list, as the rule of package
// remoteauth has it: it implements Lister, and its List says errors.ErrUnsupported.
type unsupportedLister struct{ remoteauth.Store }

func (unsupportedLister) List(context.Context) ([]remoteauth.SessionInfo, error) {
	return nil, fmt.Errorf("test wrapper: the inner store cannot list: %w", errors.ErrUnsupported)
}
