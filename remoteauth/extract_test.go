package remoteauth_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// zipEntry describes one entry of a hand-made archive.
type zipEntry struct {
	name string
	data string
	mode fs.FileMode // 0: a regular file 0600 (or a directory 0700 for names ending in '/')
}

// makeZip builds an archive with archive/zip, which writes whatever it is given, hostile or not.
func makeZip(t *testing.T, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch {
		case e.mode != 0:
			fh.SetMode(e.mode)
		case len(e.name) > 0 && e.name[len(e.name)-1] == '/':
			fh.SetMode(fs.ModeDir | 0o700)
		default:
			fh.SetMode(0o600)
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawZip builds an archive of one stored entry whose header says what the test wants, true or not.
func rawZip(t *testing.T, fh *zip.FileHeader, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(fh)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractArchiveRefusesBadArchives(t *testing.T) {
	good := makeZip(t, zipEntry{name: "Default/IndexedDB/a.ldb", data: "hello hello hello hello"})
	data := []byte("some data to store")
	tests := []struct {
		name    string
		archive []byte
		limits  remoteauth.ExtractLimits
		want    error
	}{
		{"absolute path", makeZip(t, zipEntry{name: "/etc/passwd", data: "x"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"dot-dot", makeZip(t, zipEntry{name: "Default/../../evil", data: "x"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"leading dot-dot", makeZip(t, zipEntry{name: "../evil", data: "x"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"backslash", makeZip(t, zipEntry{name: `..\evil`, data: "x"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"unclean path", makeZip(t, zipEntry{name: "Default/./a", data: "x"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"empty name", makeZip(t, zipEntry{name: "", data: "x"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"symlink", makeZip(t, zipEntry{name: "Default/link", data: "/etc/passwd", mode: fs.ModeSymlink | 0o777}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"named pipe", makeZip(t, zipEntry{name: "Default/fifo", mode: fs.ModeNamedPipe | 0o600}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"duplicate", makeZip(t, zipEntry{name: "a", data: "1"}, zipEntry{name: "a", data: "2"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"file and directory", makeZip(t, zipEntry{name: "a", data: "1"}, zipEntry{name: "a/b", data: "2"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"directory then file", makeZip(t, zipEntry{name: "a/"}, zipEntry{name: "a", data: "2"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive},
		{"too many files", makeZip(t, zipEntry{name: "a", data: "1"}, zipEntry{name: "b", data: "2"}, zipEntry{name: "c", data: "3"}), remoteauth.ExtractLimits{MaxFiles: 2}, remoteauth.ErrArchiveTooLarge},
		{"file too large", makeZip(t, zipEntry{name: "a", data: "0123456789"}), remoteauth.ExtractLimits{MaxFileSize: 9}, remoteauth.ErrArchiveTooLarge},
		{"total too large", makeZip(t, zipEntry{name: "a", data: "012345"}, zipEntry{name: "b", data: "012345"}), remoteauth.ExtractLimits{MaxTotalSize: 11}, remoteauth.ErrArchiveTooLarge},
		{"archive too large", good, remoteauth.ExtractLimits{MaxArchiveSize: int64(len(good)) - 1}, remoteauth.ErrArchiveTooLarge},
		{"zip bomb", bomb(t), remoteauth.ExtractLimits{MaxFileSize: 512 << 20}, remoteauth.ErrArchiveTooLarge},
		{"zip bomb under the file limit", bomb(t), remoteauth.ExtractLimits{MaxFileSize: 2 << 30, MaxTotalSize: 64 << 20}, remoteauth.ErrArchiveTooLarge},
		{"not a zip", []byte("this is not a zip archive at all, just text"), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"empty input", nil, remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"truncated", good[:len(good)/2], remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"bad CRC", badCRC(t), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"size larger than declared", rawZip(t, &zip.FileHeader{Name: "a", Method: zip.Store, CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(len(data)), UncompressedSize64: 4}, data), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"data past the end", rawZip(t, &zip.FileHeader{Name: "a", Method: zip.Store, CRC32: crc32.ChecksumIEEE(data), CompressedSize64: 1 << 20, UncompressedSize64: 1 << 20}, data), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"encrypted", rawZip(t, &zip.FileHeader{Name: "a", Method: zip.Store, Flags: 0x1, CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))}, data), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
		{"unknown method", rawZip(t, &zip.FileHeader{Name: "a", Method: 12, CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))}, data), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			_, err := remoteauth.ExtractArchive(t.Context(), bytes.NewReader(tt.archive), int64(len(tt.archive)), dest, tt.limits)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ExtractArchive: got %v, want an error wrapping %v", err, tt.want)
			}
			var ae *remoteauth.ArchiveError
			if !errors.As(err, &ae) {
				t.Errorf("the error %v is not an *ArchiveError", err)
			}
			if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("dest is left behind after a refused archive (Lstat: %v)", err)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(dest), "..", "evil")); err == nil {
				t.Error("a file escaped the destination")
			}
		})
	}
}

// bomb is an archive of one entry of 1 GiB of zeros in about 1 MiB. Its deflate stream is one
// sync-flushed block of 1 MiB of zeros, repeated (a back-reference into the previous block still
// reads zeros), then an empty final block.
func bomb(t *testing.T) []byte {
	t.Helper()
	zeros := make([]byte, 1<<20)
	var block bytes.Buffer
	fw, _ := flate.NewWriter(&block, flate.BestSpeed)
	fw.Write(zeros)
	fw.Flush()
	var stream bytes.Buffer
	crc := crc32.NewIEEE()
	for range 1024 {
		stream.Write(block.Bytes())
		crc.Write(zeros)
	}
	final, _ := flate.NewWriter(&stream, flate.BestSpeed)
	final.Close()
	return rawZip(t, &zip.FileHeader{Name: "bomb", Method: zip.Deflate, CRC32: crc.Sum32(), CompressedSize64: uint64(stream.Len()), UncompressedSize64: 1 << 30}, stream.Bytes())
}

// badCRC is an archive of one stored entry with one byte of its data changed after its CRC was
// computed.
func badCRC(t *testing.T) []byte {
	t.Helper()
	data := []byte("payload whose CRC will not match")
	b := rawZip(t, &zip.FileHeader{Name: "a", Method: zip.Store, CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))}, data)
	i := bytes.Index(b, data)
	b[i] ^= 0xff
	return b
}

func TestExtractArchiveKeepsModesAndContent(t *testing.T) {
	archive := makeZip(t,
		zipEntry{name: "Default/"},
		zipEntry{name: "Default/IndexedDB/x.ldb", data: "table"},
		zipEntry{name: "Default/Local Storage/leveldb/LOCK", data: ""},
		zipEntry{name: "Default/ro", data: "read only", mode: 0o400},
		zipEntry{name: "Default/exec", data: "#!/bin/sh", mode: 0o750},
	)
	dest := filepath.Join(t.TempDir(), "out")
	stats, err := remoteauth.ExtractArchive(t.Context(), bytes.NewReader(archive), int64(len(archive)), dest, remoteauth.ExtractLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != 4 || stats.Bytes != int64(len("table")+len("read only")+len("#!/bin/sh")) {
		t.Errorf("stats = %+v", stats)
	}
	for name, want := range map[string]struct {
		data string
		perm fs.FileMode
	}{
		"Default/IndexedDB/x.ldb":            {"table", 0o600},
		"Default/Local Storage/leveldb/LOCK": {"", 0o600},
		"Default/ro":                         {"read only", 0o600}, // owner read and write are added
		"Default/exec":                       {"#!/bin/sh", 0o750},
	} {
		p := filepath.Join(dest, filepath.FromSlash(name))
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want.data {
			t.Errorf("%s = %q, want %q", name, got, want.data)
		}
		info, _ := os.Stat(p)
		if info.Mode().Perm() != want.perm {
			t.Errorf("%s mode = %v, want %v", name, info.Mode().Perm(), want.perm)
		}
	}
}

func TestExtractArchiveRefusesExistingDest(t *testing.T) {
	archive := makeZip(t, zipEntry{name: "a", data: "1"})
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "keep"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := remoteauth.ExtractArchive(t.Context(), bytes.NewReader(archive), int64(len(archive)), dest, remoteauth.ExtractLimits{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("got %v, want fs.ErrExist", err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "keep")); err != nil || string(b) != "mine" {
		t.Fatalf("the existing directory was touched: %q, %v", b, err)
	}
}
