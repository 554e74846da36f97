package remoteauth_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io/fs"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
)

func TestInspectArchiveListsEntries(t *testing.T) {
	archive := makeZip(t,
		zipEntry{name: "Default/"},
		zipEntry{name: "Default/IndexedDB/x.ldb", data: "table table table table table"},
		zipEntry{name: "Default/Local Storage/leveldb/LOCK", data: ""},
		zipEntry{name: "Default/exec", data: "#!/bin/sh", mode: 0o750},
	)
	info, err := remoteauth.InspectArchive(bytes.NewReader(archive), int64(len(archive)), remoteauth.ExtractLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := info.Verify(t.Context()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := []struct {
		name string
		mode fs.FileMode
		size int64
	}{
		{"Default/", fs.ModeDir | 0o700, 0},
		{"Default/IndexedDB/x.ldb", 0o600, 29},
		{"Default/Local Storage/leveldb/LOCK", 0o600, 0},
		{"Default/exec", 0o750, 9},
	}
	if len(info.Entries) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(info.Entries), len(want), info.Entries)
	}
	for i, w := range want {
		e := info.Entries[i]
		if e.Name != w.name || e.Mode != w.mode || e.Size != w.size || (e.Mode.IsRegular() && e.Method != zip.Deflate) {
			t.Errorf("entry %d = %+v, want name %q, mode %v, size %d (deflated if a file)", i, e, w.name, w.mode, w.size)
		}
	}
	if info.Files != 3 || info.Bytes != 38 || info.Size != int64(len(archive)) {
		t.Errorf("Files %d, Bytes %d, Size %d; want 3, 38, %d", info.Files, info.Bytes, info.Size, len(archive))
	}
	if e := info.Entries[1]; e.CRC32 != crc32.ChecksumIEEE([]byte("table table table table table")) || e.CompressedSize <= 0 {
		t.Errorf("entry 1 has CRC %08x and compressed size %d", e.CRC32, e.CompressedSize)
	}
}

// TestInspectArchiveRefusesWhatExtractRefuses checks that InspectArchive and Verify find, without
// writing anything, each fault that ExtractArchive refuses, with the same kind of error.
func TestInspectArchiveRefusesWhatExtractRefuses(t *testing.T) {
	data := []byte("some data to store")
	tests := []struct {
		name     string
		archive  []byte
		limits   remoteauth.ExtractLimits
		want     error
		readable bool // the central directory reads, so the entries are listed
	}{
		{"dot-dot", makeZip(t, zipEntry{name: "Default/../../evil", data: "x"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive, true},
		{"symlink", makeZip(t, zipEntry{name: "Default/link", data: "/etc/passwd", mode: fs.ModeSymlink | 0o777}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive, true},
		{"duplicate", makeZip(t, zipEntry{name: "a", data: "1"}, zipEntry{name: "a", data: "2"}), remoteauth.ExtractLimits{}, remoteauth.ErrUnsafeArchive, true},
		{"too many files", makeZip(t, zipEntry{name: "a", data: "1"}, zipEntry{name: "b", data: "2"}), remoteauth.ExtractLimits{MaxFiles: 1}, remoteauth.ErrArchiveTooLarge, true},
		{"zip bomb", bomb(t), remoteauth.ExtractLimits{MaxFileSize: 512 << 20}, remoteauth.ErrArchiveTooLarge, true},
		{"archive too large", makeZip(t, zipEntry{name: "a", data: "1"}), remoteauth.ExtractLimits{MaxArchiveSize: 10}, remoteauth.ErrArchiveTooLarge, false},
		{"not a zip", []byte("this is not a zip archive at all, just text"), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive, false},
		{"bad CRC", badCRC(t), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive, true},
		{"size larger than declared", rawZip(t, &zip.FileHeader{Name: "a", Method: zip.Store, CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(len(data)), UncompressedSize64: 4}, data), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive, true},
		{"unknown method", rawZip(t, &zip.FileHeader{Name: "a", Method: 12, CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))}, data), remoteauth.ExtractLimits{}, remoteauth.ErrCorruptArchive, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := remoteauth.InspectArchive(bytes.NewReader(tt.archive), int64(len(tt.archive)), tt.limits)
			if (info != nil) != tt.readable {
				t.Fatalf("InspectArchive returned info %v and error %v; want entries: %v", info, err, tt.readable)
			}
			if info != nil {
				if len(info.Entries) == 0 {
					t.Error("no entries listed")
				}
				verr := info.Verify(t.Context())
				if err != nil && !errors.Is(verr, err) {
					t.Errorf("Verify after the failed InspectArchive (%v) returned %v", err, verr)
				}
				err = verr
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %v", err, tt.want)
			}
			var ae *remoteauth.ArchiveError
			if !errors.As(err, &ae) {
				t.Errorf("the error %v is not an *ArchiveError", err)
			}
		})
	}
}

func TestVerifyHonoursContext(t *testing.T) {
	archive := makeZip(t, zipEntry{name: "a", data: "1"})
	info, err := remoteauth.InspectArchive(bytes.NewReader(archive), int64(len(archive)), remoteauth.ExtractLimits{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := info.Verify(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context: %v, want context.Canceled", err)
	}
}
