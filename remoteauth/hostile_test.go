package remoteauth_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/remoteauth"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

var updateHostile = flag.Bool("update", false, "rewrite testdata/hostile and the fuzz seeds in testdata/fuzz (see TestCorporaUpToDate)")

// escapeTarget is where the zip-slip archives try to write, outside any test directory.
const escapeTarget = "/tmp/wwebstore-hostile-escape"

// hostileArchives is the corpus of testdata/hostile: each archive, how it was built, and how it
// must be refused. limits are zero (the defaults) unless the case needs lower ones to stay
// small; entry is the *ArchiveError's Entry, reason a part of its Reason.
var hostileArchives = []struct {
	file   string
	build  func() []byte
	limits remoteauth.ExtractLimits
	kind   error // nil: the archive is good and must restore
	entry  string
	reason string
}{
	{"good.zip", func() []byte {
		return build(
			ent{name: "Default/IndexedDB/db/CURRENT", data: "MANIFEST-000001\n"},
			ent{name: "Default/Local Storage/leveldb/000003.log", data: "WAToken1=restored"},
		)
	}, noLimits, nil, "", ""},

	// Paths that leave the destination.
	{"zip-slip.zip", func() []byte {
		return build(ent{name: "Default/IndexedDB/ok.ldb", data: "ok"}, ent{name: "Default/IndexedDB/../../../../../../.." + escapeTarget, data: "pwned"})
	}, noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB/../../../../../../.." + escapeTarget, `".." in the path`},
	{"zip-slip-leading.zip", func() []byte { return build(ent{name: "../../../../../../.." + escapeTarget, data: "pwned"}) },
		noLimits, remoteauth.ErrUnsafeArchive, "../../../../../../.." + escapeTarget, `".." in the path`},
	{"zip-slip-directory.zip", func() []byte { return build(ent{name: "../outside/"}, ent{name: "../outside/x", data: "pwned"}) },
		noLimits, remoteauth.ErrUnsafeArchive, "../outside/", `".." in the path`},
	{"zip-slip-backslash.zip", func() []byte { return build(ent{name: `Default\..\..\..\evil`, data: "pwned"}) },
		noLimits, remoteauth.ErrUnsafeArchive, `Default\..\..\..\evil`, "backslash"},
	{"absolute-path.zip", func() []byte { return build(ent{name: escapeTarget, data: "pwned"}) },
		noLimits, remoteauth.ErrUnsafeArchive, escapeTarget, "absolute path"},
	{"nul-in-name.zip", func() []byte { return build(ent{name: "Default/IndexedDB/a.ldb\x00.txt", data: "x"}) },
		noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB/a.ldb\x00.txt", "NUL"},
	{"non-utf8-name.zip", func() []byte { return build(ent{name: "Default/IndexedDB/\xff\xfe\xc0.ldb", data: "x"}) },
		noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB/\xff\xfe\xc0.ldb", "not valid UTF-8"},

	// Entries that are not regular files.
	{"symlink.zip", func() []byte {
		// A link to /etc, then a file written through it.
		return build(ent{name: "Default/IndexedDB/link", data: "/etc", mode: fs.ModeSymlink | 0o777}, ent{name: "Default/IndexedDB/link/cron.d", data: "pwned"})
	}, noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB/link", "a symlink, not a regular file"},
	{"device.zip", func() []byte {
		return build(ent{name: "Default/IndexedDB/sda", mode: fs.ModeDevice | 0o660})
	}, noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB/sda", "a device, not a regular file"},
	{"char-device.zip", func() []byte {
		return build(ent{name: "Default/IndexedDB/null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666})
	}, noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB/null", "a device, not a regular file"},
	{"named-pipe.zip", func() []byte { return build(ent{name: "Default/IndexedDB/fifo", mode: fs.ModeNamedPipe | 0o600}) },
		noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB/fifo", "a named pipe"},

	// Names that collide.
	{"duplicate-names.zip", func() []byte {
		return build(ent{name: "Default/Local Storage/leveldb/000003.log", data: "first"}, ent{name: "Default/Local Storage/leveldb/000003.log", data: "second"})
	}, noLimits, remoteauth.ErrUnsafeArchive, "Default/Local Storage/leveldb/000003.log", "the name appears twice"},
	{"duplicate-directory-and-file.zip", func() []byte {
		return build(ent{name: "Default/IndexedDB/"}, ent{name: "Default/IndexedDB", data: "x"})
	}, noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB", "the name appears twice"},
	{"file-and-directory.zip", func() []byte {
		return build(ent{name: "Default/IndexedDB", data: "x"}, ent{name: "Default/IndexedDB/db/CURRENT", data: "y"})
	}, noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB", "both a file and a directory"},

	// Zip bombs.
	{"bomb-ratio.zip", func() []byte {
		// One entry that declares 3 GiB, from 1 KiB of deflate data: refused from its header,
		// before a byte is inflated.
		return build(ent{name: "Default/IndexedDB/bomb.ldb", data: string(make([]byte, 1<<20)), declared: 3 << 30})
	}, noLimits, remoteauth.ErrArchiveTooLarge, "Default/IndexedDB/bomb.ldb", "more than MaxFileSize"},
	{"bomb-ratio-total.zip", func() []byte {
		// Five entries under MaxFileSize, 9.5 GiB together.
		var es []ent
		for i := range 5 {
			es = append(es, ent{name: fmt.Sprintf("Default/IndexedDB/bomb%d.ldb", i), data: string(make([]byte, 1<<20)), declared: 1900 << 20})
		}
		return build(es...)
	}, noLimits, remoteauth.ErrArchiveTooLarge, "", "more than MaxTotalSize"},
	{"bomb-lying-size.zip", func() []byte {
		// Declares 1 KiB, inflates to 16 MiB: reading stops at the declared size.
		return build(ent{name: "Default/IndexedDB/liar.ldb", data: string(make([]byte, 16<<20)), declared: 1 << 10})
	}, noLimits, remoteauth.ErrCorruptArchive, "Default/IndexedDB/liar.ldb", "bad data"},
	{"bomb-count-files.zip", func() []byte {
		// 101 empty files; the default MaxFiles is 100,000 (8 MiB of headers), lowered here to
		// keep the file small. bomb-count-directories runs under the default.
		var es []ent
		for i := range 101 {
			es = append(es, ent{name: fmt.Sprintf("Default/IndexedDB/f%03d", i)})
		}
		return build(es...)
	}, remoteauth.ExtractLimits{MaxFiles: 100}, remoteauth.ErrArchiveTooLarge, "", "101 entries, more than MaxFiles 100"},
	{"bomb-count-directories.zip", func() []byte {
		// 51 files 2,000 directories deep: 102,000 directories to create from 51 entries,
		// over the default MaxFiles.
		deep := strings.Repeat("d/", 1999)
		var es []ent
		for i := range 51 {
			es = append(es, ent{name: fmt.Sprintf("x%02d/%sf", i, deep)})
		}
		return build(es...)
	}, noLimits, remoteauth.ErrArchiveTooLarge, "", "counting those that the names imply"},
	{"overlapping-entries.zip", func() []byte {
		// Two central directory entries point at one local file: the core of the
		// non-recursive zip bombs, where thousands of entries share one compressed stream.
		data := strings.Repeat("overlap ", 4096)
		b := build(ent{name: "Default/IndexedDB/a.ldb", data: data}, ent{name: "Default/IndexedDB/b.ldb", data: data})
		cd := centralDirectory(b)
		second := cd + 46 + len("Default/IndexedDB/a.ldb")
		binary.LittleEndian.PutUint32(b[second+42:], binary.LittleEndian.Uint32(b[cd+42:]))
		return b
	}, noLimits, remoteauth.ErrUnsafeArchive, "Default/IndexedDB/b.ldb", `overlaps the data of entry "Default/IndexedDB/a.ldb"`},

	// Broken archives.
	{"truncated.zip", func() []byte {
		b := build(ent{name: "Default/IndexedDB/db/000005.ldb", data: strings.Repeat("table ", 10000)}, ent{name: "Default/Local Storage/leveldb/000003.log", data: "WAToken1=x"})
		return b[:len(b)/2]
	}, noLimits, remoteauth.ErrCorruptArchive, "", "not a readable zip archive"},
	{"truncated-central-directory.zip", func() []byte {
		b := build(ent{name: "Default/IndexedDB/db/000005.ldb", data: "table"}, ent{name: "Default/Local Storage/leveldb/000003.log", data: "WAToken1=x"})
		return b[:len(b)-10]
	}, noLimits, remoteauth.ErrCorruptArchive, "", "not a readable zip archive"},
	{"bit-flipped-data.zip", func() []byte {
		data := strings.Repeat("a deflated LevelDB table ", 2000)
		b := build(ent{name: "Default/IndexedDB/db/000005.ldb", data: data})
		b[30+len("Default/IndexedDB/db/000005.ldb")+40] ^= 0x10 // inside the deflate stream
		return b
	}, noLimits, remoteauth.ErrCorruptArchive, "Default/IndexedDB/db/000005.ldb", "bad data"},
	{"bit-flipped-crc.zip", func() []byte {
		b := build(ent{name: "Default/IndexedDB/db/CURRENT", data: "MANIFEST-000001\n"})
		b[centralDirectory(b)+16] ^= 0x01 // the CRC-32 in the central directory
		return b
	}, noLimits, remoteauth.ErrCorruptArchive, "Default/IndexedDB/db/CURRENT", "bad data"},
	{"directory-count-mismatch.zip", func() []byte {
		// The end record claims 65,535 entries; the central directory holds one.
		b := build(ent{name: "Default/IndexedDB/db/CURRENT", data: "MANIFEST-000001\n"})
		eocd := len(b) - 22
		binary.LittleEndian.PutUint16(b[eocd+8:], 0xffff)
		binary.LittleEndian.PutUint16(b[eocd+10:], 0xffff)
		return b
	}, noLimits, remoteauth.ErrCorruptArchive, "", "not a readable zip archive"},
	{"data-descriptor-bad-crc.zip", func() []byte {
		// Local header without sizes, data descriptor after the data (as streaming writers
		// make them) whose CRC-32 disagrees with the central directory's.
		data := "WAToken1=descriptor"
		b := build(ent{name: "Default/Local Storage/leveldb/000003.log", data: data, descriptor: true})
		d := bytes.Index(b, []byte("PK\x07\x08"))
		b[d+4] ^= 0xff
		return b
	}, noLimits, remoteauth.ErrCorruptArchive, "Default/Local Storage/leveldb/000003.log", "bad data"},
	{"data-descriptor-short-size.zip", func() []byte {
		// Sizes in the descriptor and the central directory; the central directory's
		// compressed size cuts the deflate stream short.
		b := build(ent{name: "Default/IndexedDB/db/000003.log", data: strings.Repeat("record ", 3000), descriptor: true})
		cd := centralDirectory(b)
		binary.LittleEndian.PutUint32(b[cd+20:], binary.LittleEndian.Uint32(b[cd+20:])-8)
		return b
	}, noLimits, remoteauth.ErrCorruptArchive, "Default/IndexedDB/db/000003.log", "bad data"},
	{"encrypted-entry.zip", func() []byte { return build(ent{name: "Default/IndexedDB/db/CURRENT", data: "x", flags: 0x1}) },
		noLimits, remoteauth.ErrCorruptArchive, "Default/IndexedDB/db/CURRENT", "encrypted entries are not supported"},
	{"unknown-method.zip", func() []byte { return build(ent{name: "Default/IndexedDB/db/CURRENT", data: "x", method: 12}) },
		noLimits, remoteauth.ErrCorruptArchive, "Default/IndexedDB/db/CURRENT", "compression method 12 is not supported"},
	{"not-a-zip.zip", func() []byte { return []byte("<html>403 Forbidden</html>\n") },
		noLimits, remoteauth.ErrCorruptArchive, "", "not a readable zip archive"},
}

var noLimits remoteauth.ExtractLimits

// ent is an entry for build. data is the uncompressed content.
type ent struct {
	name       string
	data       string
	mode       fs.FileMode // 0: a file 0600, or a directory 0700 when name ends in '/'
	method     uint16      // 0: deflate
	declared   int64       // > 0: the uncompressed size the headers declare, instead of len(data)
	flags      uint16      // extra general-purpose flags
	descriptor bool        // sizes and CRC in a data descriptor after the data
}

// build writes entries with archive/zip's raw writer, which writes headers as it is told.
func build(entries ...ent) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		method := e.method
		if method == 0 {
			method = zip.Deflate
		}
		var body []byte
		if method == zip.Deflate {
			var c bytes.Buffer
			fw, _ := flate.NewWriter(&c, flate.BestCompression)
			fw.Write([]byte(e.data))
			if e.declared > 0 {
				fw.Flush() // a stream that does not end: the header lies about what follows
			} else {
				fw.Close()
			}
			body = c.Bytes()
		} else {
			body = []byte(e.data)
		}
		usize := uint64(len(e.data))
		if e.declared > 0 {
			usize = uint64(e.declared)
		}
		fh := &zip.FileHeader{
			Name: e.name, Method: method, Flags: e.flags,
			CRC32: crc32.ChecksumIEEE([]byte(e.data)), CompressedSize64: uint64(len(body)), UncompressedSize64: usize,
		}
		if e.descriptor {
			fh.Flags |= 0x8
		}
		switch {
		case e.mode != 0:
			fh.SetMode(e.mode)
		case strings.HasSuffix(e.name, "/"):
			fh.SetMode(fs.ModeDir | 0o700)
		default:
			fh.SetMode(0o600)
		}
		w, err := zw.CreateRaw(fh)
		if err != nil {
			panic(err)
		}
		w.Write(body)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// centralDirectory returns the offset of the central directory of a zip without a comment.
func centralDirectory(b []byte) int {
	return int(binary.LittleEndian.Uint32(b[len(b)-22+16:]))
}

func hostilePath(file string) string { return filepath.Join("testdata", "hostile", file) }

// Seeds of FuzzValidateSessionName and FuzzOpenStore, written to testdata/fuzz by -update.
var (
	sessionNameSeeds = []string{"RemoteAuth", "RemoteAuth-a", "a-b_C9", "", "..", "a/b", "a b", "é", "a\x00",
		strings.Repeat("x", remoteauth.MaxSessionNameLen), strings.Repeat("x", remoteauth.MaxSessionNameLen+1)}
	storeURLSeeds = []string{"mem://", "MEM://", "mem://host", "mem:opaque", "", "://", "redis://localhost", "nosuch://x",
		"%zz://", "mem://%zz", "mem://?a=b#f", "Mem:", "a b://c", "mem://user:pass@/", "mem:///path"}
)

// maxFuzzSeed is the size of the largest hostile archive that also seeds FuzzExtractArchive:
// the fuzzer mutates small inputs best.
const maxFuzzSeed = 2 << 10

// corpusFiles returns every file of the checked-in corpora, by path, with its content.
func corpusFiles() map[string][]byte {
	seed := func(v any) []byte {
		typ := "string"
		if _, ok := v.([]byte); ok {
			typ = "[]byte"
		}
		return fmt.Appendf(nil, "go test fuzz v1\n%s(%q)\n", typ, v)
	}
	files := map[string][]byte{}
	for _, c := range hostileArchives {
		b := c.build()
		files[hostilePath(c.file)] = b
		if len(b) <= maxFuzzSeed {
			files[filepath.Join("testdata", "fuzz", "FuzzExtractArchive", strings.TrimSuffix(c.file, ".zip"))] = seed(b)
		}
	}
	for i, s := range sessionNameSeeds {
		files[filepath.Join("testdata", "fuzz", "FuzzValidateSessionName", fmt.Sprintf("seed-%02d", i))] = seed(s)
	}
	for i, s := range storeURLSeeds {
		files[filepath.Join("testdata", "fuzz", "FuzzOpenStore", fmt.Sprintf("seed-%02d", i))] = seed(s)
	}
	return files
}

// TestCorporaUpToDate writes testdata/hostile and the fuzz seeds with -update:
//
//	go test -run TestCorporaUpToDate ./remoteauth/ -args -update
//
// Otherwise it checks that every file is there, and that every hostile archive has its case.
// Archives are only checked to exist: a new Go release may deflate differently.
func TestCorporaUpToDate(t *testing.T) {
	files := corpusFiles()
	if *updateHostile {
		for p, b := range files {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for p, want := range files {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%v: run go test -run TestCorporaUpToDate ./remoteauth/ -args -update", err)
			continue
		}
		if !strings.HasSuffix(p, ".zip") && !bytes.Equal(got, want) {
			t.Errorf("%s differs from its seed: run go test -run TestCorporaUpToDate ./remoteauth/ -args -update", p)
		}
	}
	zips, err := filepath.Glob(hostilePath("*.zip"))
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range zips {
		if _, ok := files[z]; !ok {
			t.Errorf("%s has no case in hostileArchives", z)
		}
	}
}

// TestHostileArchives runs every archive of the corpus through ExtractArchive, and through a
// Session's Restore from a store that holds it. A hostile archive must be refused with the
// expected error, before anything is written: no destination, no file outside it, the local
// profile byte for byte as it was, and no temporary file left in DataPath.
func TestHostileArchives(t *testing.T) {
	for _, c := range hostileArchives {
		t.Run(strings.TrimSuffix(c.file, ".zip"), func(t *testing.T) {
			archive, err := os.ReadFile(hostilePath(c.file))
			if err != nil {
				t.Fatal(err)
			}
			check := func(t *testing.T, err error) {
				t.Helper()
				if c.kind == nil {
					if err != nil {
						t.Fatalf("a good archive was refused: %v", err)
					}
					return
				}
				if !errors.Is(err, c.kind) {
					t.Fatalf("got %v; want an error wrapping %v", err, c.kind)
				}
				var ae *remoteauth.ArchiveError
				if !errors.As(err, &ae) {
					t.Fatalf("the error %v is not an *ArchiveError", err)
				}
				if ae.Entry != c.entry || !strings.Contains(ae.Reason, c.reason) {
					t.Errorf("ArchiveError{Entry: %q, Reason: %q}; want Entry %q and a Reason saying %q", ae.Entry, ae.Reason, c.entry, c.reason)
				}
			}

			t.Run("ExtractArchive", func(t *testing.T) {
				root := t.TempDir()
				dest := filepath.Join(root, "a", "b", "c", "out")
				if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
					t.Fatal(err)
				}
				before := dirState(t, root)
				_, err := remoteauth.ExtractArchive(t.Context(), bytes.NewReader(archive), int64(len(archive)), dest, c.limits)
				check(t, err)
				if c.kind == nil {
					return
				}
				if after := dirState(t, root); !maps.Equal(before, after) {
					t.Errorf("a refused archive changed the file system:\nbefore %v\n after %v", before, after)
				}
				if _, err := os.Lstat(escapeTarget); err == nil {
					t.Errorf("%s was written", escapeTarget)
				}
			})

			t.Run("Restore", func(t *testing.T) {
				store := memstore.New()
				if err := store.Save(t.Context(), "RemoteAuth-victim", bytes.NewReader(archive)); err != nil {
					t.Fatal(err)
				}
				root := t.TempDir()
				s, err := remoteauth.NewSession(store, &remoteauth.Options{ClientID: "victim", DataPath: filepath.Join(root, "auth"), Limits: c.limits})
				if err != nil {
					t.Fatal(err)
				}
				filetree.Write(t, s.ProfileDir(), map[string]string{
					"Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000005.ldb": "the good local login",
					"Default/Local Storage/leveldb/000003.log":                                "WAToken1=local",
					"Default/Cache/Cache_Data/f_000001":                                       "cache",
				})
				before := dirState(t, root)
				res, err := s.Restore(t.Context())
				check(t, err)
				if c.kind == nil {
					if !res.Found {
						t.Error("the good archive was not found")
					}
					return
				}
				if after := dirState(t, root); !maps.Equal(before, after) {
					t.Errorf("a refused restore changed the file system:\nbefore %v\n after %v", before, after)
				}
				if _, err := os.Lstat(escapeTarget); err == nil {
					t.Errorf("%s was written", escapeTarget)
				}
			})
		})
	}
}

// dirState maps every file, directory and link under dir to its type, mode and content hash.
func dirState(t *testing.T, dir string) map[string]string {
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
		state := info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			state += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		m[rel] = state
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
