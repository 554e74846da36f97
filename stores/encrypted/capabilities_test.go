package encryptedstore_test

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/remoteauth"
	encryptedstore "github.com/wwebstore/wwebstore/stores/encrypted"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
	"github.com/wwebstore/wwebstore/storetest"
)

// leaserStore is an inner store that grants leases, as both root-module stores do.
type leaserStore interface {
	remoteauth.Store
	remoteauth.Leaser
}

// storedBytes returns what the inner store holds for session.
func storedBytes(t *testing.T, inner remoteauth.Store, session string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := inner.Extract(t.Context(), session, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkCiphertext checks that b is an age file that does not show secret.
func checkCiphertext(t *testing.T, b []byte, secret string) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")) {
		t.Errorf("the inner store holds %.40q…, not an age file", b)
	}
	if bytes.Contains(b, []byte(secret)) {
		t.Errorf("the inner store holds %q in the clear", secret)
	}
}

// TestLeasedSessionStoresCiphertext checks that a Session over the wrapper takes the inner
// store's lease, and that what it saves under the lease (Lease.Save) is ciphertext.
func TestLeasedSessionStoresCiphertext(t *testing.T) {
	const secret = "WAToken1=leased-secret-token"
	keys := &encryptedstore.Options{Identities: []age.Identity{newIdentity(t)}}
	for _, in := range innerStores {
		t.Run(in.name, func(t *testing.T) {
			ctx := t.Context()
			raw := in.new(t)
			inner, ok := raw.(leaserStore)
			if !ok {
				t.Fatalf("%T is no Leaser", raw)
			}
			st := newStore(t, inner, keys)

			// A Lease of the wrapper saves ciphertext, and reads back through Extract.
			l, err := st.AcquireLease(ctx, "RemoteAuth-direct", "test", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Save(ctx, strings.NewReader(secret)); err != nil {
				t.Fatal(err)
			}
			checkCiphertext(t, storedBytes(t, inner, "RemoteAuth-direct"), secret)
			var out bytes.Buffer
			if err := st.Extract(ctx, "RemoteAuth-direct", &out); err != nil || out.String() != secret {
				t.Errorf("Extract after Lease.Save = %q, %v; want %q", out.String(), err, secret)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}

			// A Session holds the inner lease while it lives, and backs up ciphertext under it.
			files := map[string]string{
				"Default/IndexedDB/db/000003.log":          strings.Repeat("record ", 5000),
				"Default/Local Storage/leveldb/000003.log": secret,
			}
			// The secret is too short for deflate to shrink: a plain zip would hold it as it is.
			src, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir(),
				Lease: remoteauth.LeaseOptions{Owner: "encrypted-src"}})
			if err != nil {
				t.Fatal(err)
			}
			filetree.Write(t, src.ProfileDir(), files)
			if _, err := src.Backup(ctx); err != nil {
				t.Fatal(err)
			}
			_, err = inner.AcquireLease(ctx, src.Name(), "intruder", time.Minute)
			var held *remoteauth.LeaseHeldError
			if !errors.As(err, &held) || held.Owner != "encrypted-src" {
				t.Fatalf("AcquireLease from the inner store while the Session runs = %v; want ErrLeaseHeld naming encrypted-src", err)
			}
			checkCiphertext(t, storedBytes(t, inner, src.Name()), secret)
			if err := src.Close(ctx); err != nil {
				t.Fatal(err)
			}

			dst, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer abandon(t, dst)
			if res, err := dst.Restore(ctx); err != nil || !res.Found {
				t.Fatalf("Restore = %+v, %v", res, err)
			}
			if got, want := hashTree(t, dst.ProfileDir()), hashTree(t, src.ProfileDir()); !maps.Equal(got, want) {
				t.Errorf("restored profile differs:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestRestoreFallsBack writes a tampered ciphertext straight into the inner store over a good
// archive: Restore through the wrapper refuses it and restores the previous archive.
func TestRestoreFallsBack(t *testing.T) {
	keys := &encryptedstore.Options{Identities: []age.Identity{newIdentity(t)}}
	for _, in := range innerStores {
		t.Run(in.name, func(t *testing.T) {
			ctx := t.Context()
			inner := in.new(t)
			st := newStore(t, inner, keys)
			src, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			filetree.Write(t, src.ProfileDir(), map[string]string{
				"Default/IndexedDB/db/000003.log":          strings.Repeat("good ", 30000),
				"Default/Local Storage/leveldb/000003.log": "WAToken1=good",
			})
			if _, err := src.Backup(ctx); err != nil {
				t.Fatal(err)
			}
			if err := src.Close(ctx); err != nil {
				t.Fatal(err)
			}
			good, err := st.Versions(ctx, src.Name())
			if err != nil || len(good) != 1 {
				t.Fatalf("Versions after one backup = %v, %v; want one archive", good, err)
			}

			bad := bytes.Clone(storedBytes(t, inner, src.Name()))
			bad[len(bad)-1] ^= 0x01 // the last chunk's tag
			if err := inner.Save(ctx, src.Name(), bytes.NewReader(bad)); err != nil {
				t.Fatal(err)
			}

			dst, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer abandon(t, dst)
			res, err := dst.Restore(ctx)
			if err != nil {
				t.Fatalf("Restore = %v; want the previous archive", err)
			}
			if !res.FellBack || res.Version != good[0].ID || len(res.Skipped) != 1 || !errors.Is(res.Skipped[0], remoteauth.ErrCorruptArchive) {
				t.Errorf("Restore = %+v; want a fall-back to %q past one archive refused with ErrCorruptArchive", res, good[0].ID)
			}
			if got, want := hashTree(t, dst.ProfileDir()), hashTree(t, src.ProfileDir()); !maps.Equal(got, want) {
				t.Errorf("restored profile differs:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// plainStore is an inner store with the Store methods alone: no Lister, History or Leaser.
type plainStore struct{ remoteauth.Store }

// TestWithoutCapabilities wraps a store that has none of the optional capabilities: the
// wrapper's capability methods say errors.ErrUnsupported, storetest skips their groups, and a
// Session backs up and restores without a lease or a history.
func TestWithoutCapabilities(t *testing.T) {
	ctx := t.Context()
	keys := &encryptedstore.Options{Identities: []age.Identity{newIdentity(t)}}
	mem := memstore.New() // a Leaser, hidden behind plainStore
	st := newStore(t, plainStore{mem}, keys)

	_, listErr := st.List(ctx)
	_, versionsErr := st.Versions(ctx, "RemoteAuth-a")
	versionErr := st.ExtractVersion(ctx, "RemoteAuth-a", "1", &bytes.Buffer{})
	l, leaseErr := st.AcquireLease(ctx, "RemoteAuth-a", "test", time.Minute)
	for name, err := range map[string]error{"List": listErr, "Versions": versionsErr, "ExtractVersion": versionErr, "AcquireLease": leaseErr} {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s = %v; want an error wrapping errors.ErrUnsupported", name, err)
		}
	}
	if l != nil {
		t.Errorf("AcquireLease granted %v over a store without leases", l)
	}

	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) remoteauth.Store {
			return newStore(t, plainStore{memstore.New()}, keys)
		})
	})

	src, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	filetree.Write(t, src.ProfileDir(), map[string]string{
		"Default/Local Storage/leveldb/000003.log": "WAToken1=plain-inner",
	})
	if _, err := src.Backup(ctx); err != nil {
		t.Fatalf("Backup without a lease: %v", err)
	}
	// The Session took no lease: another owner gets one from the store behind the wrapper.
	other, err := mem.AcquireLease(ctx, src.Name(), "other", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease of the session from the inner store = %v; want a grant, since the Session leases nothing", err)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}
	checkCiphertext(t, storedBytes(t, mem, src.Name()), "WAToken1")
	if err := src.Close(ctx); err != nil {
		t.Fatal(err)
	}

	dst, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer abandon(t, dst)
	res, err := dst.Restore(ctx)
	if err != nil || !res.Found || res.Version != "" || res.FellBack {
		t.Fatalf("Restore without History = %+v, %v; want the archive found, with no version", res, err)
	}
	if got, want := hashTree(t, dst.ProfileDir()), hashTree(t, src.ProfileDir()); !maps.Equal(got, want) {
		t.Errorf("restored profile differs:\n got %v\nwant %v", got, want)
	}
}
