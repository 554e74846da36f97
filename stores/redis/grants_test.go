package redisstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	"github.com/wwebstore/wwebstore/storetest"
)

// grantCommands are the commands of the README's ACL (section Permissions): those the store
// sends (PING, EXISTS, GET, SET, HMGET, LRANGE, SCAN, MULTI, EXEC, EVALSHA and EVAL) and those
// its Lua scripts call, which Redis checks against the same user's ACL.
var grantCommands = []string{
	"ping", "exists", "get", "set", "hmget", "lrange", "scan", "multi", "exec", "evalsha", "eval",
	"time", "del", "pttl", "pexpire", "pexpireat", "persist",
	"hget", "hset", "hdel", "hgetall",
	"zadd", "zrem", "zscore", "zrange", "zremrangebyscore",
	"lpush", "ltrim",
}

// aclRules returns the ACL SETUSER rules of a user that may run commands on the keys that match
// keyPattern, as the README writes them.
func aclRules(password, keyPattern string, commands []string) []any {
	rules := []any{"reset", "on", ">" + password, "~" + keyPattern, "resetchannels", "-@all"}
	for _, c := range commands {
		rules = append(rules, "+"+c)
	}
	return rules
}

// grantedURL returns srv's URL (one key prefix of its own) with the credentials of a new ACL
// user that has the README's grants, with commands in place of grantCommands, on the keys that
// match keys(prefix); the user is deleted when the test ends.
func grantedURL(t *testing.T, srv testservers.Server, commands []string, keys func(prefix string) string) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	prefix := u.Query().Get("prefix")
	if prefix == "" {
		t.Fatalf("the test server's URL %s has no key prefix", srv.URL)
	}
	name := "wwebstore-grants-" + rand.Text()[:12]
	password := rand.Text()
	admin := newClient(t, serverOptions(t))
	args := append([]any{"ACL", "SETUSER", name}, aclRules(password, keys(prefix), commands)...)
	if err := admin.Do(t.Context(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := admin.Do(context.Background(), "ACL", "DELUSER", name).Err(); err != nil {
			t.Errorf("ACL DELUSER %s: %v", name, err)
		}
	})
	u.User = url.UserPassword(name, password)
	return u.String()
}

// openGranted opens a store through the URL opener, on a key prefix of its own, as a user with
// the given commands on the keys that match keys(prefix).
func openGranted(t *testing.T, commands []string, keys func(prefix string) string) remoteauth.Store {
	t.Helper()
	st, err := remoteauth.OpenStore(t.Context(), grantedURL(t, testservers.Redis(t), commands, keys))
	if err != nil {
		t.Fatalf("OpenStore as the least-privilege user: %v", err)
	}
	t.Cleanup(func() { st.(interface{ Close() error }).Close() })
	return st
}

// underPrefix is the README's key pattern: the store's key prefix, then anything.
func underPrefix(prefix string) string { return prefix + "*" }

// TestGrants runs the conformance suite (History and List included) and a Session's backup,
// restore and logout through a user that has nothing but the README's ACL: the commands of
// grantCommands, on the keys under the store's prefix.
func TestGrants(t *testing.T) {
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) remoteauth.Store { return openGranted(t, grantCommands, underPrefix) })
	})
	t.Run("Session", func(t *testing.T) {
		grantsRoundTrip(t, openGranted(t, grantCommands, underPrefix))
	})
	t.Run("README", func(t *testing.T) {
		// The README's ACL is the one tested here.
		readme, err := os.ReadFile("README.md")
		if err != nil {
			t.Fatal(err)
		}
		want := "ACL SETUSER wwebstore reset on >CHANGE-ME ~wwebstore:* resetchannels -@all +" + strings.Join(grantCommands, " +") + "\n"
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md does not hold the ACL that this test grants:\n%s", want)
		}
	})
}

// TestGrantsMissing checks that a user without one of the grants fails with an error of the
// store that wraps Redis's NOPERM, which names what the user lacks.
func TestGrantsMissing(t *testing.T) {
	tests := []struct {
		name     string
		commands []string
		keys     func(prefix string) string // the user's key pattern
		op       func(t *testing.T, st remoteauth.Store) error
		want     string
	}{
		{
			name: "NoSCAN",
			commands: slices.DeleteFunc(slices.Clone(grantCommands), func(c string) bool {
				return c == "scan"
			}),
			keys: underPrefix,
			op: func(t *testing.T, st remoteauth.Store) error {
				_, err := st.(remoteauth.Lister).List(t.Context())
				return err
			},
			want: "'scan' command",
		},
		{
			name:     "OtherPrefix",
			commands: grantCommands,
			keys:     func(string) string { return "some-other-prefix:*" },
			op: func(t *testing.T, st remoteauth.Store) error {
				_, err := st.SessionExists(t.Context(), "alice")
				return err
			},
			want: "access one of the keys",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openGranted(t, tt.commands, tt.keys)
			err := tt.op(t, st)
			if err == nil {
				t.Fatal("no error; want NOPERM")
			}
			t.Logf("%s: %v", tt.name, err)
			if msg := err.Error(); !strings.Contains(msg, "redisstore") || !strings.Contains(msg, "NOPERM") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q; want the store's error wrapping NOPERM with %q", msg, tt.want)
			}
		})
	}
}

// grantsRoundTrip backs a profile up twice through a remoteauth.Session over st (so the second
// backup keeps the first archive) under the session's lease, closes it (releasing the lease),
// restores it into another directory with a second Session (which takes the lease), checks the
// files, lists the session and its versions, and logs out (Delete, fenced by the lease).
func grantsRoundTrip(t *testing.T, st remoteauth.Store) {
	t.Helper()
	files := map[string]string{
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log": string(bytes.Repeat([]byte("login "), 20<<10)),
		"Default/Local Storage/leveldb/000003.log":                                "first",
	}
	src := newSession(t, st)
	filetree.Write(t, src.ProfileDir(), files)
	if _, err := src.Backup(t.Context()); err != nil {
		t.Fatalf("first Backup: %v", err)
	}
	files["Default/Local Storage/leveldb/000003.log"] = "second"
	filetree.Write(t, src.ProfileDir(), files)
	if _, err := src.Backup(t.Context()); err != nil {
		t.Fatalf("second Backup: %v", err)
	}
	if v, err := st.(remoteauth.History).Versions(t.Context(), src.Name()); err != nil || len(v) != 2 {
		t.Fatalf("Versions = %v, %v; want 2 archives", v, err)
	}
	if l, err := st.(remoteauth.Lister).List(t.Context()); err != nil || len(l) != 1 || l[0].Name != src.Name() {
		t.Fatalf("List = %v, %v; want %s alone", l, err, src.Name())
	}
	// src holds the session's lease (leasing is on by default): its Close takes the final backup
	// and releases it, so that dst can take it at once.
	if err := src.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	dst := newSession(t, st)
	res, err := dst.Restore(t.Context())
	if err != nil || !res.Found || res.FellBack {
		t.Fatalf("Restore = %+v, %v; want the newest archive", res, err)
	}
	if got := filetree.Read(t, dst.ProfileDir()); !maps.Equal(got, files) {
		t.Errorf("restored %d files, not the %d backed up", len(got), len(files))
	}
	if err := dst.Delete(t.Context()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if ok, err := st.SessionExists(t.Context(), src.Name()); err != nil || ok {
		t.Errorf("SessionExists after Delete = %v, %v; want false, nil", ok, err)
	}
}
