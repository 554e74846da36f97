package remoteauth_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
	_ "github.com/wwebstore/wwebstore/stores/memory" // registers mem://
)

// FuzzExtractArchive feeds arbitrary bytes to ExtractArchive. It must never panic and never
// write outside its destination; it either fails, leaving no destination, or writes exactly the
// regular files of the archive, each with the size and CRC-32 its entry declares. The seed
// corpus is testdata/fuzz/FuzzExtractArchive: the archives of testdata/hostile up to maxFuzzSeed
// bytes, written by TestCorporaUpToDate -update.
func FuzzExtractArchive(f *testing.F) {
	limits := remoteauth.ExtractLimits{MaxArchiveSize: 1 << 20, MaxFiles: 200, MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20}
	f.Fuzz(func(t *testing.T, archive []byte) {
		root := t.TempDir()
		dest := filepath.Join(root, "out")
		stats, err := remoteauth.ExtractArchive(t.Context(), bytes.NewReader(archive), int64(len(archive)), dest, limits)
		entries, rerr := os.ReadDir(root)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			if len(entries) != 0 {
				t.Fatalf("ExtractArchive failed (%v) and left %v behind", err, entries)
			}
			var ae *remoteauth.ArchiveError
			if errors.As(err, &ae) && !errors.Is(err, remoteauth.ErrCorruptArchive) && !errors.Is(err, remoteauth.ErrUnsafeArchive) && !errors.Is(err, remoteauth.ErrArchiveTooLarge) {
				t.Fatalf("an *ArchiveError of unknown kind: %v", err)
			}
			return
		}
		if len(entries) != 1 || entries[0].Name() != "out" {
			t.Fatalf("ExtractArchive wrote %v beside its destination", entries)
		}
		zr, zerr := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
		if zerr != nil && !errors.Is(zerr, zip.ErrInsecurePath) {
			t.Fatalf("ExtractArchive accepted an archive that archive/zip cannot read: %v", zerr)
		}
		want := map[string]*zip.File{}
		for _, zf := range zr.File {
			if !strings.HasSuffix(zf.Name, "/") {
				want[zf.Name] = zf
			}
		}
		files := 0
		var bytesOut int64
		err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			if !d.Type().IsRegular() {
				t.Errorf("%s is a %v, not a regular file", p, d.Type())
				return nil
			}
			rel, _ := filepath.Rel(dest, p)
			zf, ok := want[filepath.ToSlash(rel)]
			if !ok {
				t.Errorf("%s is not an entry of the archive", rel)
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if uint64(len(b)) != zf.UncompressedSize64 || crc32.ChecksumIEEE(b) != zf.CRC32 {
				t.Errorf("%s: %d bytes, CRC %08x; the entry declares %d bytes, CRC %08x", rel, len(b), crc32.ChecksumIEEE(b), zf.UncompressedSize64, zf.CRC32)
			}
			files++
			bytesOut += int64(len(b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files != len(want) || stats.Files != files || stats.Bytes != bytesOut {
			t.Errorf("wrote %d files (%d bytes), stats %+v, for %d file entries", files, bytesOut, stats, len(want))
		}
	})
}

// FuzzValidateSessionName checks ValidateSessionName against the rule it documents, written
// out without a regular expression, and SessionName against ValidateSessionName. Seeds:
// testdata/fuzz/FuzzValidateSessionName (sessionNameSeeds).
func FuzzValidateSessionName(f *testing.F) {
	allowed := func(s string) bool {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
		return true
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := remoteauth.ValidateSessionName(name)
		valid := len(name) >= 1 && len(name) <= remoteauth.MaxSessionNameLen && allowed(name)
		if valid != (err == nil) {
			t.Fatalf("ValidateSessionName(%q) = %v; the rule says valid = %v", name, err, valid)
		}
		if err != nil && !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Fatalf("ValidateSessionName(%q) = %v, which does not wrap ErrInvalidSession", name, err)
		}

		// name as a clientId.
		session, err := remoteauth.SessionName(name)
		switch {
		case name == "":
			if session != "RemoteAuth" || err != nil {
				t.Fatalf(`SessionName("") = %q, %v; want "RemoteAuth"`, session, err)
			}
		case err != nil:
			if !errors.Is(err, remoteauth.ErrInvalidSession) {
				t.Fatalf("SessionName(%q) = %v, which does not wrap ErrInvalidSession", name, err)
			}
			if allowed(name) && len("RemoteAuth-"+name) <= remoteauth.MaxSessionNameLen {
				t.Fatalf("SessionName(%q) refused a valid clientId: %v", name, err)
			}
		default:
			if session != "RemoteAuth-"+name || remoteauth.ValidateSessionName(session) != nil {
				t.Fatalf("SessionName(%q) = %q, not a valid RemoteAuth-<clientId>", name, session)
			}
		}
	})
}

// FuzzOpenStore checks OpenStore's handling of arbitrary URLs: it never panics, fails for URLs
// that do not parse or have no registered scheme (naming the known schemes), and returns a
// Store whenever it returns no error. "file" URLs are left out: they create directories. Seeds:
// testdata/fuzz/FuzzOpenStore (storeURLSeeds).
func FuzzOpenStore(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		u, perr := url.Parse(raw)
		if perr == nil && strings.EqualFold(u.Scheme, "file") {
			t.Skip("file URLs create directories")
		}
		st, err := remoteauth.OpenStore(t.Context(), raw)
		if err == nil {
			if st == nil {
				t.Fatalf("OpenStore(%q) = nil, nil", raw)
			}
			if c, ok := st.(io.Closer); ok {
				c.Close()
			}
			return
		}
		if st != nil {
			t.Fatalf("OpenStore(%q) returned a Store and an error: %v", raw, err)
		}
		if perr != nil {
			return
		}
		known := false
		for _, s := range remoteauth.Schemes() {
			known = known || strings.EqualFold(u.Scheme, s)
		}
		if !known && !strings.Contains(err.Error(), "known schemes: ") {
			t.Fatalf("OpenStore(%q) = %v; the error does not list the known schemes", raw, err)
		}
		if !strings.HasPrefix(err.Error(), "remoteauth: ") {
			t.Fatalf("OpenStore(%q) = %v; the error does not say where it comes from", raw, err)
		}
	})
}
