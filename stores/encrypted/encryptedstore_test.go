package encryptedstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/internal/peakheap"
	"github.com/wwebstore/wwebstore/remoteauth"
	encryptedstore "github.com/wwebstore/wwebstore/stores/encrypted"
	filestore "github.com/wwebstore/wwebstore/stores/file"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
	"github.com/wwebstore/wwebstore/storetest"
)

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newStore(t testing.TB, inner remoteauth.Store, opts *encryptedstore.Options) *encryptedstore.Store {
	t.Helper()
	st, err := encryptedstore.New(inner, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newFileStore(t testing.TB) *filestore.Store {
	t.Helper()
	st, err := filestore.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// innerStores are the real stores the wrapper is tested over.
var innerStores = []struct {
	name string
	new  func(t testing.TB) remoteauth.Store
}{
	{"memstore", func(testing.TB) remoteauth.Store { return memstore.New() }},
	{"filestore", func(t testing.TB) remoteauth.Store { return newFileStore(t) }},
}

// TestConformance runs the whole suite, the List, History and Lease groups included, over each
// real inner store: the wrapper passes them on, and its Lease encrypts (the Lease group reads
// what a Lease saved back with Extract, which refuses a plain zip).
func TestConformance(t *testing.T) {
	keys := &encryptedstore.Options{Identities: []age.Identity{newIdentity(t)}}
	for _, inner := range innerStores {
		t.Run(inner.name, func(t *testing.T) {
			storetest.RunWith(t, func(t *testing.T) remoteauth.Store {
				return newStore(t, inner.new(t), keys)
			}, &storetest.Options{StoredSize: ciphertextSize(t, keys)})
		})
	}
	t.Run("passphrase", func(t *testing.T) {
		// A low work factor keeps the suite's hundreds of Saves fast; the default is tested in
		// TestPassphrase.
		pass := &encryptedstore.Options{Passphrase: "correct horse battery staple", ScryptWorkFactor: 4}
		storetest.RunWith(t, func(t *testing.T) remoteauth.Store {
			return newStore(t, memstore.New(), pass)
		}, &storetest.Options{StoredSize: ciphertextSize(t, pass)})
	})
}

// ciphertextSize returns the size of the age file of an archive of n bytes encrypted with keys:
// a header and a 16-byte nonce, whose size it measures once (it depends on the recipients
// only), then the archive in 64 KiB chunks, each with a 16-byte tag, at least one chunk.
func ciphertextSize(t *testing.T, keys *encryptedstore.Options) func(n int64) int64 {
	t.Helper()
	inner := memstore.New()
	if err := newStore(t, inner, keys).Save(t.Context(), "RemoteAuth-size", strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	if err := inner.Extract(t.Context(), "RemoteAuth-size", &ct); err != nil {
		t.Fatal(err)
	}
	head := int64(ct.Len()) - 16 // an empty archive is one empty chunk: its tag alone
	return func(n int64) int64 {
		const chunk = 64 << 10
		return head + n + 16*max(1, (n+chunk-1)/chunk)
	}
}

// TestCiphertextAtRest checks that the inner store holds an age file that reveals nothing of
// the archive, and that two saves of one archive differ (a fresh file key each time).
func TestCiphertextAtRest(t *testing.T) {
	ctx := t.Context()
	inner := memstore.New()
	st := newStore(t, inner, &encryptedstore.Options{Identities: []age.Identity{newIdentity(t)}})
	secret := strings.Repeat("WAToken1=very-secret-session-token;", 2000)
	var stored [2][]byte
	for i := range stored {
		if err := st.Save(ctx, "RemoteAuth-a", strings.NewReader(secret)); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := inner.Extract(ctx, "RemoteAuth-a", &buf); err != nil {
			t.Fatal(err)
		}
		stored[i] = buf.Bytes()
	}
	for i, b := range stored {
		if !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n-> X25519 ")) {
			t.Errorf("save %d: the inner store holds %.40q…, not an age file to an X25519 key", i, b)
		}
		if bytes.Contains(b, []byte("WAToken1")) || bytes.Contains(b, []byte("secret")) {
			t.Errorf("save %d: the plaintext shows through the ciphertext", i)
		}
	}
	if bytes.Equal(stored[0], stored[1]) {
		t.Error("two saves of one archive gave the same ciphertext")
	}
	var out bytes.Buffer
	if err := st.Extract(ctx, "RemoteAuth-a", &out); err != nil || out.String() != secret {
		t.Fatalf("Extract = %d bytes, %v; want the archive back", out.Len(), err)
	}
}

// tamperings lists ways to change a stored ciphertext ct: each must be refused. An age file is
// a header ending in a "--- <MAC>" line, a 16-byte nonce, then chunks of 64 KiB of ciphertext
// and a 16-byte tag each, the last one shorter and flagged as the last.
//
// A bit flipped in the recipient stanza is not among them: it is refused with ErrWrongKey
// (TestDamagedKeyBlock), since a damaged key block cannot be told from one for another key.
func tamperings(ct []byte) []struct {
	name   string
	change func([]byte) []byte
} {
	const chunk = 64<<10 + 16
	mac := bytes.Index(ct, []byte("\n--- ")) + len("\n--- ")
	nonce := mac + bytes.IndexByte(ct[mac:], '\n') + 1
	payload := nonce + 16
	flip := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b = bytes.Clone(b); b[i] ^= 0x01; return b }
	}
	cut := func(i int) func([]byte) []byte { return func(b []byte) []byte { return bytes.Clone(b[:i]) } }
	return []struct {
		name   string
		change func([]byte) []byte
	}{
		{"bit flipped in the header MAC", flip(mac + 2)},
		{"bit flipped in the nonce", flip(nonce)},
		{"bit flipped in the first chunk", flip(payload + 100)},
		{"bit flipped in a tag", flip(payload + chunk - 1)},
		{"bit flipped in the last byte", flip(len(ct) - 1)},
		{"cut inside the header", cut(30)},
		{"cut after the nonce", cut(payload)},
		// At a chunk boundary, every chunk read is whole and authentic; only the missing
		// last-chunk flag tells that the end is gone.
		{"cut at a chunk boundary", cut(payload + 2*chunk)},
		{"cut in the middle", cut(len(ct) / 2)},
		{"cut by one byte", cut(len(ct) - 1)},
		{"trailing byte", func(b []byte) []byte { return append(bytes.Clone(b), 0) }},
		{"chunks swapped", func(b []byte) []byte {
			b = bytes.Clone(b)
			first := bytes.Clone(b[payload : payload+chunk])
			copy(b[payload:], b[payload+chunk:payload+2*chunk])
			copy(b[payload+chunk:], first)
			return b
		}},
		{"chunk removed", func(b []byte) []byte {
			return append(bytes.Clone(b[:payload+chunk]), b[payload+2*chunk:]...)
		}},
		{"empty", cut(0)},
		{"garbage", func([]byte) []byte { return []byte("this is not an archive at all") }},
	}
}

// TestTamperedArchiveIsRefused changes a stored ciphertext in every way of tamperings, then
// checks that Extract fails with ErrCorruptArchive and that a Session's Restore leaves the local
// profile exactly as it was, over each real inner store.
func TestTamperedArchiveIsRefused(t *testing.T) {
	id := newIdentity(t)
	archive := sessionArchive(t)
	for _, inner := range innerStores {
		t.Run(inner.name, func(t *testing.T) {
			ctx := t.Context()
			raw := inner.new(t)
			st := newStore(t, raw, &encryptedstore.Options{Identities: []age.Identity{id}})
			if err := st.Save(ctx, "RemoteAuth-victim", bytes.NewReader(archive)); err != nil {
				t.Fatal(err)
			}
			var ct bytes.Buffer
			if err := raw.Extract(ctx, "RemoteAuth-victim", &ct); err != nil {
				t.Fatal(err)
			}
			if ct.Len() < 4*(64<<10) {
				t.Fatalf("the sample ciphertext is %d bytes: too small to cut at chunk boundaries", ct.Len())
			}
			for _, tc := range tamperings(ct.Bytes()) {
				t.Run(tc.name, func(t *testing.T) {
					bad := tc.change(ct.Bytes())
					if bytes.Equal(bad, ct.Bytes()) {
						t.Fatal("the tampering changed nothing")
					}
					// Deleted first, so that the inner store keeps no older archive that Restore
					// could fall back to (TestRestoreFallsBack tests that).
					if err := raw.Delete(ctx, "RemoteAuth-victim"); err != nil {
						t.Fatal(err)
					}
					if err := raw.Save(ctx, "RemoteAuth-victim", bytes.NewReader(bad)); err != nil {
						t.Fatal(err)
					}
					err := st.Extract(ctx, "RemoteAuth-victim", io.Discard)
					if !errors.Is(err, remoteauth.ErrCorruptArchive) {
						t.Fatalf("Extract = %v; want an error wrapping ErrCorruptArchive", err)
					}
					var ae *remoteauth.ArchiveError
					if !errors.As(err, &ae) || !strings.Contains(err.Error(), `session "RemoteAuth-victim"`) {
						t.Errorf("the error %q is not an *ArchiveError naming the session", err)
					}

					s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "victim", DataPath: t.TempDir()})
					if err != nil {
						t.Fatal(err)
					}
					defer abandon(t, s)
					filetree.Write(t, s.ProfileDir(), map[string]string{
						"Default/IndexedDB/db/000003.log":          "the good local login",
						"Default/Local Storage/leveldb/000003.log": "WAToken1=local",
					})
					before := hashTree(t, filepath.Dir(s.ProfileDir()))
					if _, err := s.Restore(ctx); !errors.Is(err, remoteauth.ErrCorruptArchive) {
						t.Fatalf("Restore = %v; want an error wrapping ErrCorruptArchive", err)
					}
					if after := hashTree(t, filepath.Dir(s.ProfileDir())); !maps.Equal(before, after) {
						t.Errorf("DataPath changed after a refused restore:\nbefore %v\n after %v", before, after)
					}
				})
			}
		})
	}
}

// TestDamagedKeyBlock flips a bit in the wrapped file key: no identity can unwrap it, which
// Extract reports as ErrWrongKey, and Restore refuses it.
func TestDamagedKeyBlock(t *testing.T) {
	ctx := t.Context()
	inner := memstore.New()
	st := newStore(t, inner, &encryptedstore.Options{Identities: []age.Identity{newIdentity(t)}})
	if err := st.Save(ctx, "RemoteAuth-a", strings.NewReader("archive")); err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	if err := inner.Extract(ctx, "RemoteAuth-a", &ct); err != nil {
		t.Fatal(err)
	}
	b := ct.Bytes()
	// A character of the stanza body (the wrapped file key) changed into another base64
	// character, so that the header still parses.
	i := bytes.Index(b, []byte("\n--- ")) - 10
	b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
	if err := inner.Save(ctx, "RemoteAuth-a", bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := st.Extract(ctx, "RemoteAuth-a", &out)
	if !errors.Is(err, encryptedstore.ErrWrongKey) || out.Len() != 0 {
		t.Fatalf("Extract = %d bytes, %v; want nothing and ErrWrongKey", out.Len(), err)
	}
}

// sessionArchive is a real archive of a small profile, made by a Session, of a few 64 KiB chunks.
func sessionArchive(t *testing.T) []byte {
	t.Helper()
	inner := memstore.New()
	s, err := remoteauth.NewSession(inner, &remoteauth.Options{ClientID: "src", DataPath: t.TempDir(), Compression: 1})
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 300<<10)
	x := uint64(7)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	filetree.Write(t, s.ProfileDir(), map[string]string{
		"Default/IndexedDB/db/000005.ldb":          string(noise),
		"Default/Local Storage/leveldb/000003.log": "WAToken1=remote",
	})
	defer abandon(t, s)
	if _, err := s.Backup(t.Context()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := inner.Extract(t.Context(), s.Name(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// abandon ends s without a backup, releasing its lease.
func abandon(t *testing.T, s *remoteauth.Session) {
	t.Helper()
	if err := s.Abandon(context.Background()); err != nil {
		t.Errorf("Abandon: %v", err)
	}
}

// hashTree maps every file and directory under dir to its mode and the SHA-256 of its content.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			m[rel] = info.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m[rel] = fmt.Sprintf("%v %x", info.Mode(), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSessionRoundTrip(t *testing.T) {
	id := newIdentity(t)
	for _, inner := range innerStores {
		t.Run(inner.name, func(t *testing.T) {
			st := newStore(t, inner.new(t), &encryptedstore.Options{Identities: []age.Identity{id}})
			files := map[string]string{
				"Default/IndexedDB/db/CURRENT":             "MANIFEST-000001\n",
				"Default/IndexedDB/db/000003.log":          strings.Repeat("record ", 50000),
				"Default/Local Storage/leveldb/000003.log": "WAToken1=secret",
			}
			src, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			filetree.Write(t, src.ProfileDir(), files)
			if _, err := src.Backup(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := src.Close(t.Context()); err != nil { // releases the lease for dst
				t.Fatal(err)
			}
			dst, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer abandon(t, dst)
			if res, err := dst.Restore(t.Context()); err != nil || !res.Found || res.Files != len(files) {
				t.Fatalf("Restore = %+v, %v", res, err)
			}
			if got, want := hashTree(t, dst.ProfileDir()), hashTree(t, src.ProfileDir()); !maps.Equal(got, want) {
				t.Errorf("restored profile differs:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestKeyRotation writes with an old key, rotates to a new one, and checks that old archives
// stay readable, new ones are written to the new key only, and a store with only the old key
// cannot read them.
func TestKeyRotation(t *testing.T) {
	ctx := t.Context()
	inner := memstore.New()
	oldID, newID := newIdentity(t), newIdentity(t)
	before := newStore(t, inner, &encryptedstore.Options{Identities: []age.Identity{oldID}})
	if err := before.Save(ctx, "RemoteAuth-old", strings.NewReader("old archive")); err != nil {
		t.Fatal(err)
	}
	after := newStore(t, inner, &encryptedstore.Options{Identities: []age.Identity{newID, oldID}})
	if got := extract(t, after, "RemoteAuth-old"); got != "old archive" {
		t.Errorf("after rotation, the old archive reads %q", got)
	}
	if err := after.Save(ctx, "RemoteAuth-new", strings.NewReader("new archive")); err != nil {
		t.Fatal(err)
	}
	newOnly := newStore(t, inner, &encryptedstore.Options{Identities: []age.Identity{newID}})
	if got := extract(t, newOnly, "RemoteAuth-new"); got != "new archive" {
		t.Errorf("the new key alone reads %q", got)
	}
	err := before.Extract(ctx, "RemoteAuth-new", io.Discard)
	if !errors.Is(err, encryptedstore.ErrWrongKey) {
		t.Fatalf("the old key reading a new archive: %v; want ErrWrongKey", err)
	}
	var nm *age.NoIdentityMatchError
	if !errors.As(err, &nm) || !strings.Contains(err.Error(), "add the key it was written with") {
		t.Errorf("the error %q does not wrap age's NoIdentityMatchError or say what to do", err)
	}
	if errors.Is(err, remoteauth.ErrCorruptArchive) {
		t.Error("a wrong key is reported as a corrupt archive")
	}

	// Explicit Recipients: the new public key writes, both identities read.
	explicit := newStore(t, inner, &encryptedstore.Options{Recipients: []age.Recipient{newID.Recipient()}, Identities: []age.Identity{oldID, newID}})
	if err := explicit.Save(ctx, "RemoteAuth-new2", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := before.Extract(ctx, "RemoteAuth-new2", io.Discard); !errors.Is(err, encryptedstore.ErrWrongKey) {
		t.Errorf("an archive written to Recipients is readable by the old key alone: %v", err)
	}
	if got := extract(t, explicit, "RemoteAuth-old"); got != "old archive" {
		t.Errorf("Identities do not read the old archive: %q", got)
	}
}

func extract(t *testing.T, st remoteauth.Store, session string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := st.Extract(t.Context(), session, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestPassphrase(t *testing.T) {
	ctx := t.Context()
	inner := memstore.New()

	// The default work factor: one Save (a second of scrypt, several under -race).
	def := newStore(t, inner, &encryptedstore.Options{Passphrase: "first passphrase"})
	if err := def.Save(ctx, "RemoteAuth-default", strings.NewReader("archive")); err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	if err := inner.Extract(ctx, "RemoteAuth-default", &ct); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ct.Bytes(), []byte("\n-> scrypt ")) || !bytes.Contains(ct.Bytes(), []byte(fmt.Sprintf(" %d\n", encryptedstore.DefaultScryptWorkFactor))) {
		t.Errorf("the header is not an scrypt stanza of work factor %d: %.80q", encryptedstore.DefaultScryptWorkFactor, ct.Bytes())
	}

	st := newStore(t, inner, &encryptedstore.Options{Passphrase: "first passphrase", ScryptWorkFactor: 10})
	if err := st.Save(ctx, "RemoteAuth-a", strings.NewReader("archive")); err != nil {
		t.Fatal(err)
	}
	if got := extract(t, st, "RemoteAuth-a"); got != "archive" {
		t.Errorf("got %q", got)
	}
	wrong := newStore(t, inner, &encryptedstore.Options{Passphrase: "another passphrase", ScryptWorkFactor: 10})
	if err := wrong.Extract(ctx, "RemoteAuth-a", io.Discard); !errors.Is(err, encryptedstore.ErrWrongKey) {
		t.Errorf("a wrong passphrase: %v; want ErrWrongKey", err)
	}
	// Rotation from a passphrase to a key: the old passphrase reads through Identities.
	oldPass, err := age.NewScryptIdentity("first passphrase")
	if err != nil {
		t.Fatal(err)
	}
	key := newIdentity(t)
	rotated := newStore(t, inner, &encryptedstore.Options{Identities: []age.Identity{key, oldPass}})
	if got := extract(t, rotated, "RemoteAuth-a"); got != "archive" {
		t.Errorf("the old passphrase in Identities reads %q", got)
	}
}

// TestScryptWorkFactorCap checks that an archive whose header asks for more scrypt work than
// the store allows is refused without doing that work.
func TestScryptWorkFactorCap(t *testing.T) {
	ctx := t.Context()
	inner := memstore.New()
	st := newStore(t, inner, &encryptedstore.Options{Passphrase: "p", ScryptWorkFactor: 4})
	if err := st.Save(ctx, "RemoteAuth-a", strings.NewReader("archive")); err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	if err := inner.Extract(ctx, "RemoteAuth-a", &ct); err != nil {
		t.Fatal(err)
	}
	// A forged header asking for 2^30 iterations (and 1 TiB of memory).
	forged := bytes.Replace(ct.Bytes(), []byte(" 4\n"), []byte(" 30\n"), 1)
	if bytes.Equal(forged, ct.Bytes()) {
		t.Fatalf("no work factor 4 in the header %.80q", ct.Bytes())
	}
	if err := inner.Save(ctx, "RemoteAuth-a", bytes.NewReader(forged)); err != nil {
		t.Fatal(err)
	}
	err := st.Extract(ctx, "RemoteAuth-a", io.Discard)
	if !errors.Is(err, remoteauth.ErrCorruptArchive) || !strings.Contains(err.Error(), "work factor") {
		t.Errorf("Extract of an archive over the work factor cap: %v; want ErrCorruptArchive about the work factor", err)
	}
}

func TestPlaintextArchive(t *testing.T) {
	ctx := t.Context()
	inner := memstore.New()
	zip := sessionArchive(t)
	if err := inner.Save(ctx, "RemoteAuth-legacy", bytes.NewReader(zip)); err != nil {
		t.Fatal(err)
	}
	id := newIdentity(t)
	strict := newStore(t, inner, &encryptedstore.Options{Identities: []age.Identity{id}})
	var buf bytes.Buffer
	err := strict.Extract(ctx, "RemoteAuth-legacy", &buf)
	if !errors.Is(err, encryptedstore.ErrPlaintextArchive) || !strings.Contains(err.Error(), "AllowPlaintext") {
		t.Fatalf("Extract of a plain zip = %v; want ErrPlaintextArchive naming AllowPlaintext", err)
	}
	if buf.Len() != 0 {
		t.Errorf("a refused plain zip wrote %d bytes", buf.Len())
	}

	migrating := newStore(t, inner, &encryptedstore.Options{Identities: []age.Identity{id}, AllowPlaintext: true})
	if got := extract(t, migrating, "RemoteAuth-legacy"); got != string(zip) {
		t.Fatalf("with AllowPlaintext, Extract returns %d bytes, want the %d of the plain zip", len(got), len(zip))
	}
	// The next Save encrypts it; encrypted archives still read with AllowPlaintext.
	if err := migrating.Save(ctx, "RemoteAuth-legacy", bytes.NewReader(zip)); err != nil {
		t.Fatal(err)
	}
	if got := extract(t, strict, "RemoteAuth-legacy"); got != string(zip) {
		t.Error("after a Save through the wrapper, the archive does not read back")
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	id := newIdentity(t)
	other := newIdentity(t)
	tests := []struct {
		name  string
		inner remoteauth.Store
		opts  *encryptedstore.Options
		want  string
	}{
		{"nil inner", nil, &encryptedstore.Options{Identities: []age.Identity{id}}, "inner is nil"},
		{"nil options", memstore.New(), nil, "no key: set Options.Identities"},
		{"no key", memstore.New(), &encryptedstore.Options{AllowPlaintext: true}, "no key"},
		{"passphrase and recipients", memstore.New(), &encryptedstore.Options{Passphrase: "p", Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}}, "not both"},
		{"recipients without identities", memstore.New(), &encryptedstore.Options{Recipients: []age.Recipient{id.Recipient()}}, "could not be read back"},
		{"identities that do not match the recipients", memstore.New(), &encryptedstore.Options{Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{other}}, "none of Identities decrypts what Recipients encrypt"},
		{"work factor too high", memstore.New(), &encryptedstore.Options{Passphrase: "p", ScryptWorkFactor: 23}, "ScryptWorkFactor 23 is out of range"},
		{"negative work factor", memstore.New(), &encryptedstore.Options{Passphrase: "p", ScryptWorkFactor: -1}, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := encryptedstore.New(tt.inner, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want an error saying %q", st, err, tt.want)
			}
		})
	}
}

func TestOptionsFromEnv(t *testing.T) {
	id1, id2 := newIdentity(t), newIdentity(t)
	dir := t.TempDir()
	idFile := filepath.Join(dir, "keys.txt")
	os.WriteFile(idFile, []byte("# created: by a test\n# public key: "+id2.Recipient().String()+"\n"+id2.String()+"\n"), 0o600)
	recFile := filepath.Join(dir, "recipients.txt")
	os.WriteFile(recFile, []byte("# the new key\n"+id1.Recipient().String()+"\n"), 0o600)
	badFile := filepath.Join(dir, "bad.txt")
	os.WriteFile(badFile, []byte("not a key\n"), 0o600)
	all := []string{encryptedstore.EnvRecipients, encryptedstore.EnvRecipientsFile, encryptedstore.EnvIdentity, encryptedstore.EnvIdentityFile,
		encryptedstore.EnvPassphrase, encryptedstore.EnvOldPassphrase, encryptedstore.EnvScryptWorkFactor, encryptedstore.EnvAllowPlaintext}
	tests := []struct {
		name           string
		env            map[string]string
		wantErr        string
		recipients     int
		identities     int
		passphrase     bool
		allowPlaintext bool
	}{
		{"nothing", nil, "no key in the environment: set WWEBSTORE_AGE_IDENTITY", 0, 0, false, false},
		{"identity", map[string]string{"WWEBSTORE_AGE_IDENTITY": id1.String()}, "", 0, 1, false, false},
		{"identity and file, comma-separated", map[string]string{"WWEBSTORE_AGE_IDENTITY": id1.String() + ", " + id2.String(), "WWEBSTORE_AGE_IDENTITY_FILE": idFile}, "", 0, 3, false, false},
		{"recipients", map[string]string{"WWEBSTORE_AGE_RECIPIENTS": id1.Recipient().String() + " " + id2.Recipient().String(), "WWEBSTORE_AGE_RECIPIENTS_FILE": recFile, "WWEBSTORE_AGE_IDENTITY_FILE": idFile}, "", 3, 1, false, false},
		{"passphrase", map[string]string{"WWEBSTORE_AGE_PASSPHRASE": "p", "WWEBSTORE_AGE_OLD_PASSPHRASE": "q", "WWEBSTORE_AGE_SCRYPT_WORK_FACTOR": "10", "WWEBSTORE_AGE_ALLOW_PLAINTEXT": "1"}, "", 0, 1, true, true},
		{"bad identity", map[string]string{"WWEBSTORE_AGE_IDENTITY": "AGE-SECRET-KEY-1NOTAKEY"}, "WWEBSTORE_AGE_IDENTITY:", 0, 0, false, false},
		{"bad identity file", map[string]string{"WWEBSTORE_AGE_IDENTITY_FILE": badFile}, "WWEBSTORE_AGE_IDENTITY_FILE: " + badFile, 0, 0, false, false},
		{"missing identity file", map[string]string{"WWEBSTORE_AGE_IDENTITY_FILE": filepath.Join(dir, "missing")}, "no such file", 0, 0, false, false},
		{"private key as a recipient", map[string]string{"WWEBSTORE_AGE_RECIPIENTS": id1.String(), "WWEBSTORE_AGE_IDENTITY": id1.String()}, "want age1… public keys", 0, 0, false, false},
		{"bad work factor", map[string]string{"WWEBSTORE_AGE_PASSPHRASE": "p", "WWEBSTORE_AGE_SCRYPT_WORK_FACTOR": "high"}, "WWEBSTORE_AGE_SCRYPT_WORK_FACTOR=\"high\" is not a number", 0, 0, false, false},
		{"bad boolean", map[string]string{"WWEBSTORE_AGE_PASSPHRASE": "p", "WWEBSTORE_AGE_ALLOW_PLAINTEXT": "yes please"}, "WWEBSTORE_AGE_ALLOW_PLAINTEXT", 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range all {
				t.Setenv(k, tt.env[k])
			}
			o, err := encryptedstore.OptionsFromEnv()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("OptionsFromEnv = %v; want an error saying %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "NOTAKEY") || strings.Contains(err.Error(), id1.String()) {
					t.Errorf("the error shows a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Recipients) != tt.recipients || len(o.Identities) != tt.identities || (o.Passphrase != "") != tt.passphrase || o.AllowPlaintext != tt.allowPlaintext {
				t.Errorf("Options = %d recipients, %d identities, passphrase %v, AllowPlaintext %v; want %d, %d, %v, %v",
					len(o.Recipients), len(o.Identities), o.Passphrase != "", o.AllowPlaintext, tt.recipients, tt.identities, tt.passphrase, tt.allowPlaintext)
			}
			if _, err := encryptedstore.NewFromEnv(memstore.New()); err != nil {
				t.Errorf("NewFromEnv: %v", err)
			}
		})
	}
}

// TestStreaming checks that a 64 MiB archive goes through Save and Extract without the wrapper
// holding it in memory: the live heap grows by far less than the archive.
func TestStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB twice")
	}
	const size = 64 << 20
	// age allocates a 64 KiB buffer per chunk it decrypts: collect garbage often, so that the
	// growth measured is what is kept, not what awaits collection.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	st := newStore(t, newFileStore(t), &encryptedstore.Options{Identities: []age.Identity{newIdentity(t)}})
	ctx := t.Context()
	p := peakheap.Start()
	if err := st.Save(ctx, "RemoteAuth-big", io.LimitReader(zeros{}, size)); err != nil {
		t.Fatal(err)
	}
	savePeak := p.Stop()
	cw := &countingWriter{}
	p = peakheap.Start()
	if err := st.Extract(ctx, "RemoteAuth-big", cw); err != nil {
		t.Fatal(err)
	}
	extractPeak := p.Stop()
	if cw.n != size {
		t.Fatalf("Extract wrote %d bytes, want %d", cw.n, size)
	}
	// The live heap stays near the 64 KiB chunks; what is measured also holds garbage not yet
	// collected (a GC cycle starts at 4 MiB of heap at least).
	const limit = 8 << 20
	if savePeak > limit || extractPeak > limit {
		t.Errorf("peak heap growth: Save %d bytes, Extract %d bytes; want both under %d for a %d-byte archive", savePeak, extractPeak, limit, size)
	}
	t.Logf("peak heap growth for %d MiB: Save %d KiB, Extract %d KiB", size>>20, savePeak>>10, extractPeak>>10)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
