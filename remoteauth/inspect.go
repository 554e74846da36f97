package remoteauth

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/klauspost/compress/flate"
)

// ArchiveEntry describes one entry of an archive, from its central directory.
type ArchiveEntry struct {
	Name           string      // relative to the profile directory, '/'-separated; directories end in '/'
	Mode           fs.FileMode // Unix mode and type
	Method         uint16      // zip.Store (0) or zip.Deflate (8) in a valid archive
	Size           int64       // uncompressed bytes
	CompressedSize int64       // bytes in the archive
	CRC32          uint32      // of the uncompressed bytes
	Modified       time.Time
}

// ArchiveInfo describes an archive that InspectArchive read.
type ArchiveInfo struct {
	Size    int64          // bytes of the archive
	Entries []ArchiveEntry // in archive order
	Files   int            // regular files among Entries
	Bytes   int64          // their uncompressed bytes

	plan     *extraction // the checked entries; nil when a check failed
	checkErr error       // why a check failed
}

// InspectArchive reads the central directory of the zip archive in r (size bytes) and checks it
// as ExtractArchive does before writing anything: safe names, no duplicates, supported
// compression methods, limits. It reads no entry's data: Verify does that. r must stay readable
// until Verify returns.
//
// The error wraps ErrCorruptArchive, ErrUnsafeArchive or ErrArchiveTooLarge (as an
// *ArchiveError). When the archive is a readable zip that fails a check, InspectArchive returns
// the entries anyway, for diagnosis, along with the error; Verify of that ArchiveInfo returns the
// same error. The ArchiveInfo is nil only when the archive is not a readable zip or is larger
// than limits.MaxArchiveSize.
func InspectArchive(r io.ReaderAt, size int64, limits ExtractLimits) (*ArchiveInfo, error) {
	limits = limits.withDefaults()
	if size > limits.MaxArchiveSize {
		return nil, &ArchiveError{Kind: ErrArchiveTooLarge, Reason: fmt.Sprintf("%d bytes, more than MaxArchiveSize %d", size, limits.MaxArchiveSize)}
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are checked by planExtraction
		return nil, &ArchiveError{Kind: ErrCorruptArchive, Reason: "not a readable zip archive", Cause: err}
	}
	zr.RegisterDecompressor(zip.Deflate, flate.NewReader)
	info := &ArchiveInfo{Size: size, Entries: make([]ArchiveEntry, 0, len(zr.File))}
	for _, f := range zr.File {
		e := ArchiveEntry{
			Name:           f.Name,
			Mode:           f.Mode(),
			Method:         f.Method,
			Size:           int64(f.UncompressedSize64),
			CompressedSize: int64(f.CompressedSize64),
			CRC32:          f.CRC32,
			Modified:       f.Modified,
		}
		if e.Mode.IsRegular() {
			info.Files++
			info.Bytes += e.Size
		}
		info.Entries = append(info.Entries, e)
	}
	info.plan, info.checkErr = planExtraction(zr.File, limits)
	return info, info.checkErr
}

// Verify reads the data of every file of the archive, checking its size and CRC as
// ExtractArchive does, and writes nothing. The error wraps ErrCorruptArchive (as an
// *ArchiveError naming the entry), ctx's error, or the error that InspectArchive returned with
// this ArchiveInfo.
func (a *ArchiveInfo) Verify(ctx context.Context) error {
	if a.checkErr != nil {
		return a.checkErr
	}
	buf := make([]byte, 256<<10)
	for _, f := range a.plan.files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := verifyFile(f, buf); err != nil {
			return err
		}
	}
	return nil
}

// verifyFile reads one entry to its end; archive/zip checks its size and CRC on the way.
func verifyFile(f *zip.File, buf []byte) error {
	rc, err := f.Open()
	if err != nil {
		return &ArchiveError{Kind: ErrCorruptArchive, Entry: f.Name, Reason: "cannot read the entry", Cause: err}
	}
	defer rc.Close()
	if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
		return &ArchiveError{Kind: ErrCorruptArchive, Entry: f.Name, Reason: "bad data", Cause: err}
	}
	return nil
}
