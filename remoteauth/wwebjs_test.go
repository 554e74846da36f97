package remoteauth_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/internal/testenv"
	"github.com/wwebstore/wwebstore/remoteauth"
	"github.com/wwebstore/wwebstore/stores/memory"
)

// wwebjsVersion is the whatsapp-web.js release that compat/wwebjs/package-lock.json pins.
const wwebjsVersion = "1.34.7"

// wwebjsScript returns the path of compat/wwebjs/remoteauth.js once node and the pinned
// whatsapp-web.js are installed. scripts/test installs both; without them the test is skipped,
// except under WWEBSTORE_CI=1, where a skip would hide that CI proved nothing.
func wwebjsScript(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		testenv.Unavailable(t, format+" (scripts/test installs node and runs npm ci in compat/wwebjs)", args...)
	}
	if _, err := exec.LookPath("node"); err != nil {
		unavailable("node is not installed: %v", err)
	}
	dir, err := filepath.Abs(filepath.Join("..", "compat", "wwebjs"))
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile(filepath.Join(dir, "node_modules", "whatsapp-web.js", "package.json"))
	if err != nil {
		unavailable("whatsapp-web.js is not installed in %s: %v", dir, err)
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(pkg, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version != wwebjsVersion {
		unavailable("%s/node_modules holds whatsapp-web.js %s, not %s", dir, meta.Version, wwebjsVersion)
	}
	return filepath.Join(dir, "remoteauth.js")
}

// runRemoteAuth runs `node remoteauth.js args…` and returns the JSON it printed.
func runRemoteAuth(t *testing.T, script string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "node", append([]string{script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node remoteauth.js %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("node remoteauth.js %s printed %q: %v", strings.Join(args, " "), stdout.Bytes(), err)
	}
	t.Logf("RemoteAuth %s", stdout.Bytes())
	return out
}

// descriptorSig is the signature of a zip data descriptor. unzipper (RemoteAuth's restore) reads an
// entry whose local header has no sizes up to the first occurrence of these bytes, so any file that
// holds them in its stored data comes out truncated unless the archive puts sizes in local headers.
var descriptorSig = binary.LittleEndian.AppendUint32(nil, 0x08074b50)

// addDescriptorTraps writes, under the kept dirs of profile, files whose data holds the data
// descriptor signature where it survives compression: in incompressible data (stored, or in a
// stored deflate block) and in a compressible file.
func addDescriptorTraps(t *testing.T, profile string) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{'w', 'w', 'e', 'b', 'j', 's'})
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	withSigs := func(b []byte, every int) []byte {
		for off := 17; off+len(descriptorSig) <= len(b); off += every {
			copy(b[off:], descriptorSig)
		}
		return b
	}
	text := bytes.Repeat([]byte(`{"id":"3EB0C431","from":"4917612345678@c.us","body":"see you at eight"}`+"\n"), 2000)
	files := map[string][]byte{
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob/1/ff/ff01": withSigs(random(300<<10), 4093),
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob/1/ff/ff02": append(slices.Clone(text), withSigs(random(100<<10), 777)...),
		"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob/3/ff/ff03": withSigs(slices.Clone(text), 1000),
		"Default/Local Storage/leveldb/000999.ldb":                            append(slices.Clone(descriptorSig), random(64<<10)...),
	}
	for name, data := range files {
		p := filepath.Join(profile, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// hashTree maps every file under dir (slash paths relative to dir) to its SHA-256 and every
// directory to "dir". Only the kept dirs are read when kept is true.
func hashTree(t *testing.T, dir string, kept bool) map[string]string {
	t.Helper()
	tree := map[string]string{}
	roots := []string{"."}
	if kept {
		roots = remoteauth.DefaultKeptDirs
	}
	for _, root := range roots {
		err := filepath.WalkDir(filepath.Join(dir, filepath.FromSlash(root)), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil || rel == "." {
				return err
			}
			rel = filepath.ToSlash(rel)
			switch {
			case d.IsDir():
				tree[rel] = "dir"
			case d.Type().IsRegular():
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(data)
				tree[rel] = hex.EncodeToString(sum[:])
			default:
				t.Errorf("%s: not a regular file or directory (%v)", rel, d.Type())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if kept { // a restored profile also holds the parents of the kept dirs ("Default")
		for _, root := range roots {
			for i, c := range root {
				if c == '/' {
					tree[root[:i]] = "dir"
				}
			}
		}
	}
	return tree
}

// sameTree fails t unless got and want hold the same paths with the same contents.
func sameTree(t *testing.T, got, want map[string]string) {
	t.Helper()
	var missing, extra, differ []string
	for p, h := range want {
		switch g, ok := got[p]; {
		case !ok:
			missing = append(missing, p)
		case g != h:
			differ = append(differ, p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			extra = append(extra, p)
		}
	}
	if len(missing)+len(extra)+len(differ) == 0 {
		return
	}
	first := func(s []string) []string {
		slices.Sort(s)
		return s[:min(len(s), 5)]
	}
	t.Errorf("restored profile differs from the original (%d paths): %d missing %q, %d extra %q, %d with other content %q",
		len(want), len(missing), first(missing), len(extra), first(extra), len(differ), first(differ))
}

// TestWhatsAppWebJSCompat proves with whatsapp-web.js's own RemoteAuth code (run by node) that an
// archive made by Session.Backup restores under RemoteAuth and that an archive made by RemoteAuth
// restores with Session.Restore, byte for byte, on a generated profile that also holds data zip
// readers can mistake for a data descriptor.
func TestWhatsAppWebJSCompat(t *testing.T) {
	script := wwebjsScript(t)
	const clientID = "compat"
	ctx := t.Context()

	dataPath := t.TempDir()
	profile := filepath.Join(dataPath, "RemoteAuth-"+clientID)
	stats, err := profilegen.Generate(ctx, profile, profilegen.Options{Size: 4 << 20, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	addDescriptorTraps(t, profile)
	want := hashTree(t, profile, true)
	t.Logf("profile: %d files, %d kept in %d paths", stats.Files, stats.KeptFiles, len(want))

	t.Run("GoBackupNodeRestore", func(t *testing.T) {
		store := memstore.New()
		s, err := remoteauth.NewSession(store, &remoteauth.Options{ClientID: clientID, DataPath: dataPath})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Backup(ctx); err != nil {
			t.Fatal(err)
		}
		var archive bytes.Buffer
		if err := store.Extract(ctx, s.Name(), &archive); err != nil {
			t.Fatal(err)
		}
		// The trap is armed only if the signature is in the archive's entry data.
		if !bytes.Contains(archive.Bytes(), descriptorSig) {
			t.Fatal("the archive does not contain the data descriptor signature: the test proves nothing")
		}
		zipPath := filepath.Join(t.TempDir(), "wwebstore.zip")
		if err := os.WriteFile(zipPath, archive.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}

		nodeData := t.TempDir()
		runRemoteAuth(t, script, "restore", nodeData, clientID, zipPath)
		sameTree(t, hashTree(t, filepath.Join(nodeData, s.Name()), false), want)
	})

	t.Run("NodeBackupGoRestore", func(t *testing.T) {
		zipPath := filepath.Join(t.TempDir(), "remoteauth.zip")
		runRemoteAuth(t, script, "backup", dataPath, clientID, zipPath)
		if got := hashTree(t, profile, true); !maps.Equal(got, want) {
			t.Fatal("RemoteAuth's backup changed the profile")
		}
		archive, err := os.ReadFile(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
		if err != nil {
			t.Fatalf("RemoteAuth's archive: %v", err)
		}
		descriptors := 0
		for _, f := range zr.File {
			if f.Flags&0x8 != 0 {
				descriptors++
			}
		}
		t.Logf("RemoteAuth's archive: %d bytes, %d entries, %d with data descriptors", len(archive), len(zr.File), descriptors)

		store := memstore.New()
		s, err := remoteauth.NewSession(store, &remoteauth.Options{ClientID: clientID, DataPath: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Save(ctx, s.Name(), bytes.NewReader(archive)); err != nil {
			t.Fatal(err)
		}
		res, err := s.Restore(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Found {
			t.Fatal("Restore found no archive")
		}
		sameTree(t, hashTree(t, s.ProfileDir(), false), want)
	})
}
