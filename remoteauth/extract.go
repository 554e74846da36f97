package remoteauth

import (
	"archive/zip"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"
)

// ExtractLimits bounds what a restore accepts from a store, so that a corrupt or hostile archive
// (a zip bomb) cannot fill the disk. A zero field takes its default. An archive over a limit is
// refused with an error wrapping ErrArchiveTooLarge, before anything is written.
type ExtractLimits struct {
	MaxArchiveSize int64 // bytes fetched from the store; default 4 GiB
	MaxFiles       int   // files and directories, explicit or implied by the names; default 100,000
	MaxFileSize    int64 // uncompressed bytes of one file; default 2 GiB
	MaxTotalSize   int64 // uncompressed bytes of all files; default 8 GiB
}

// DefaultExtractLimits are the limits used for the zero fields of ExtractLimits. A 1 GB WhatsApp
// Web profile keeps about 440 MiB in 9,000 files in its archived directories.
var DefaultExtractLimits = ExtractLimits{
	MaxArchiveSize: 4 << 30,
	MaxFiles:       100_000,
	MaxFileSize:    2 << 30,
	MaxTotalSize:   8 << 30,
}

func (l ExtractLimits) withDefaults() ExtractLimits {
	d := DefaultExtractLimits
	if l.MaxArchiveSize > 0 {
		d.MaxArchiveSize = l.MaxArchiveSize
	}
	if l.MaxFiles > 0 {
		d.MaxFiles = l.MaxFiles
	}
	if l.MaxFileSize > 0 {
		d.MaxFileSize = l.MaxFileSize
	}
	if l.MaxTotalSize > 0 {
		d.MaxTotalSize = l.MaxTotalSize
	}
	return d
}

// ExtractStats tells what an extraction wrote.
type ExtractStats struct {
	Files int   // regular files written
	Bytes int64 // their uncompressed bytes
}

// ExtractArchive checks the zip archive in r (size bytes) and extracts it into dest, which must
// not exist yet (it is created with mode 0700). Before writing anything it refuses archives with
// unsafe entries (absolute paths, "..", backslashes, names that are not UTF-8, symlinks and other
// non-regular files, duplicate names, a name that is both a file and a directory, entries whose
// data overlap), encrypted entries or unknown compression methods, and archives over limits. While writing it checks every entry's size and
// CRC. On any error dest is removed, and the error wraps ErrCorruptArchive, ErrUnsafeArchive or
// ErrArchiveTooLarge (as an *ArchiveError), ctx's error, or the file system's error. File modes
// are kept (with owner read and write added); modification times are not.
func ExtractArchive(ctx context.Context, r io.ReaderAt, size int64, dest string, limits ExtractLimits) (ExtractStats, error) {
	limits = limits.withDefaults()
	if size > limits.MaxArchiveSize {
		return ExtractStats{}, &ArchiveError{Kind: ErrArchiveTooLarge, Reason: fmt.Sprintf("%d bytes, more than MaxArchiveSize %d", size, limits.MaxArchiveSize)}
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are checked below
		return ExtractStats{}, &ArchiveError{Kind: ErrCorruptArchive, Reason: "not a readable zip archive", Cause: err}
	}
	zr.RegisterDecompressor(zip.Deflate, flate.NewReader)
	plan, err := planExtraction(zr.File, limits)
	if err != nil {
		return ExtractStats{}, err
	}
	if err := os.Mkdir(dest, 0o700); err != nil {
		return ExtractStats{}, err
	}
	stats, err := plan.run(ctx, dest)
	if err != nil {
		os.RemoveAll(dest)
		return ExtractStats{}, err
	}
	return stats, nil
}

// extraction is a checked archive, ready to extract.
type extraction struct {
	dirs  []*zip.File // explicit directory entries
	files []*zip.File
	// parents are the directories to create, explicit or implied, sorted so that a parent comes
	// before its children.
	parents []string
	bytes   int64
}

// planExtraction checks every entry of an archive before anything is written.
func planExtraction(files []*zip.File, limits ExtractLimits) (*extraction, error) {
	if len(files) > limits.MaxFiles {
		return nil, &ArchiveError{Kind: ErrArchiveTooLarge, Reason: fmt.Sprintf("%d entries, more than MaxFiles %d", len(files), limits.MaxFiles)}
	}
	x := &extraction{}
	seen := map[string]bool{}
	isFile := map[string]bool{}
	isDir := map[string]bool{}
	tooMany := func() error {
		return &ArchiveError{Kind: ErrArchiveTooLarge, Reason: fmt.Sprintf("more than MaxFiles %d files and directories (counting those that the names imply)", limits.MaxFiles)}
	}
	for _, f := range files {
		name, dir := strings.CutSuffix(f.Name, "/")
		if err := checkEntryName(name); err != nil {
			return nil, &ArchiveError{Kind: ErrUnsafeArchive, Entry: f.Name, Reason: err.Error()}
		}
		if seen[name] {
			return nil, &ArchiveError{Kind: ErrUnsafeArchive, Entry: f.Name, Reason: "the name appears twice"}
		}
		seen[name] = true
		if f.Flags&0x1 != 0 {
			return nil, &ArchiveError{Kind: ErrCorruptArchive, Entry: f.Name, Reason: "encrypted entries are not supported"}
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			return nil, &ArchiveError{Kind: ErrCorruptArchive, Entry: f.Name, Reason: fmt.Sprintf("compression method %d is not supported (only stored and deflated entries are)", f.Method)}
		}
		mode := f.Mode()
		switch {
		case dir || mode.IsDir():
			if !dir || f.UncompressedSize64 != 0 {
				return nil, &ArchiveError{Kind: ErrUnsafeArchive, Entry: f.Name, Reason: "a directory entry must end in '/' and hold no data"}
			}
			isDir[name] = true
			x.dirs = append(x.dirs, f)
		case mode.Type() != 0:
			return nil, &ArchiveError{Kind: ErrUnsafeArchive, Entry: f.Name, Reason: fmt.Sprintf("a %s, not a regular file", describeType(mode))}
		default:
			if f.UncompressedSize64 > uint64(limits.MaxFileSize) {
				return nil, &ArchiveError{Kind: ErrArchiveTooLarge, Entry: f.Name, Reason: fmt.Sprintf("%d bytes, more than MaxFileSize %d", f.UncompressedSize64, limits.MaxFileSize)}
			}
			x.bytes += int64(f.UncompressedSize64)
			if x.bytes > limits.MaxTotalSize {
				return nil, &ArchiveError{Kind: ErrArchiveTooLarge, Reason: fmt.Sprintf("more than MaxTotalSize %d bytes uncompressed", limits.MaxTotalSize)}
			}
			isFile[name] = true
			x.files = append(x.files, f)
		}
		// The parents of a clean name, deepest first, until one is known: each step scans one
		// path element, so deep names cost no more than their length.
		for p := name; ; {
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
			if isDir[p] {
				break
			}
			isDir[p] = true
		}
		if len(isFile)+len(isDir) > limits.MaxFiles {
			return nil, tooMany()
		}
	}
	for name := range isDir {
		if isFile[name] {
			return nil, &ArchiveError{Kind: ErrUnsafeArchive, Entry: name, Reason: "the name is both a file and a directory"}
		}
		x.parents = append(x.parents, name)
	}
	slices.Sort(x.parents) // "a" sorts before "a/b"
	if err := checkOverlaps(x.files); err != nil {
		return nil, err
	}
	return x, nil
}

// checkOverlaps refuses entries whose data overlap: a zip bomb that points many entries at one
// compressed stream (or hides entries inside another's data) multiplies its output without
// growing the archive, and no zip writer makes such archives.
func checkOverlaps(files []*zip.File) error {
	type span struct {
		start, end uint64
		f          *zip.File
	}
	spans := make([]span, 0, len(files))
	for _, f := range files {
		if f.CompressedSize64 == 0 {
			continue
		}
		off, err := f.DataOffset()
		if err != nil {
			return &ArchiveError{Kind: ErrCorruptArchive, Entry: f.Name, Reason: "cannot read the local header", Cause: err}
		}
		spans = append(spans, span{uint64(off), uint64(off) + f.CompressedSize64, f})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(spans); i++ {
		if prev := spans[i-1]; spans[i].start < prev.end {
			return &ArchiveError{Kind: ErrUnsafeArchive, Entry: spans[i].f.Name, Reason: fmt.Sprintf("its data overlaps the data of entry %q (overlapping entries: a zip bomb)", prev.f.Name)}
		}
	}
	return nil
}

// checkEntryName reports why name (without a trailing '/') may not be extracted.
func checkEntryName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.ContainsAny(name, "\\\x00"):
		return errors.New("backslash or NUL in the name")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute path")
	case slices.Contains(strings.Split(name, "/"), ".."):
		return errors.New(`".." in the path`)
	case path.Clean(name) != name:
		return errors.New("the path is not clean (\".\" or empty elements)")
	case !filepath.IsLocal(filepath.FromSlash(name)):
		return errors.New("not a local path on this system")
	case !utf8.ValidString(name):
		return errors.New("the name is not valid UTF-8 (Chromium names its files in UTF-8; another encoding would restore under other names)")
	}
	return nil
}

func describeType(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// run writes the planned entries under dest. Files are written by parallel workers.
func (x *extraction) run(ctx context.Context, dest string) (ExtractStats, error) {
	for _, d := range x.parents {
		if err := os.Mkdir(filepath.Join(dest, filepath.FromSlash(d)), 0o700); err != nil {
			return ExtractStats{}, err
		}
	}
	// Workers take whole directories: creating a file locks its directory, and file creation is
	// most of the cost of a restore on many file systems, so two workers in one directory would
	// wait for each other.
	runs := dirRuns(x.files)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     int
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	take := func() []*zip.File {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next == len(runs) {
			return nil
		}
		next++
		return runs[next-1]
	}
	for range extractWorkers() {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for run := take(); run != nil; run = take() {
				for _, f := range run {
					if err := ctx.Err(); err != nil {
						fail(err)
						return
					}
					if err := extractFile(f, dest, buf); err != nil {
						fail(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return ExtractStats{}, firstErr
	}
	for _, d := range x.dirs {
		p := filepath.Join(dest, filepath.FromSlash(strings.TrimSuffix(d.Name, "/")))
		if err := os.Chmod(p, d.Mode().Perm()|0o700); err != nil {
			return ExtractStats{}, err
		}
	}
	return ExtractStats{Files: len(x.files), Bytes: x.bytes}, nil
}

// maxRunBytes caps the uncompressed bytes of one run, so that a directory of large files (the
// LevelDB tables, most of a profile's bytes) is shared between workers.
const maxRunBytes = 16 << 20

// dirRuns splits files into runs of consecutive entries in the same directory, of at most
// maxRunBytes each (or one file).
func dirRuns(files []*zip.File) [][]*zip.File {
	var runs [][]*zip.File
	start, bytes := 0, uint64(0)
	for i, f := range files {
		if i > start && (path.Dir(f.Name) != path.Dir(files[start].Name) || bytes+f.UncompressedSize64 > maxRunBytes) {
			runs = append(runs, files[start:i])
			start, bytes = i, 0
		}
		bytes += f.UncompressedSize64
	}
	if start < len(files) {
		runs = append(runs, files[start:])
	}
	return runs
}

// extractFile writes one checked entry. archive/zip verifies the size and the CRC as the data is
// read; a mismatch becomes ErrCorruptArchive.
func extractFile(f *zip.File, dest string, buf []byte) error {
	rc, err := f.Open()
	if err != nil {
		return &ArchiveError{Kind: ErrCorruptArchive, Entry: f.Name, Reason: "cannot read the entry", Cause: err}
	}
	defer rc.Close()
	perm := f.Mode().Perm() | 0o600
	out, err := os.OpenFile(filepath.Join(dest, filepath.FromSlash(f.Name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, copyErr := io.CopyBuffer(writerOnly{out}, rc, buf)
	if err := out.Close(); copyErr == nil {
		copyErr = err
	}
	var perr *os.PathError
	switch {
	case copyErr == nil:
		return nil
	case errors.As(copyErr, &perr): // the destination failed (a full disk, say)
		return copyErr
	default: // the archive failed: bad CRC, short or malformed data
		return &ArchiveError{Kind: ErrCorruptArchive, Entry: f.Name, Reason: "bad data", Cause: copyErr}
	}
}

// extractWorkers is the number of files written at once: one per CPU, since inflating is the work.
func extractWorkers() int { return runtime.GOMAXPROCS(0) }

// writerOnly hides *os.File's ReadFrom, so that io.CopyBuffer uses the buffer it is given.
type writerOnly struct{ io.Writer }
