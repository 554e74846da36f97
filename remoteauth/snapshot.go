package remoteauth

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/flate"
)

// maxBufferedEntry is the largest file that a compression worker reads into memory. Larger files
// are compressed twice, streaming: once to learn their CRC and compressed size, which a zip local
// header must hold up front, and once more into the archive.
const maxBufferedEntry = 8 << 20

// maxEntrySize is the largest file an archive can hold: without data descriptors, a local header
// has 32-bit sizes, and archive/zip writes no ZIP64 extra field in raw mode.
const maxEntrySize = 1<<32 - 1

// fileReadAttempts bounds how often one file that keeps changing while it is read is read again.
const fileReadAttempts = 3

// entry is one file or directory of a snapshot.
type entry struct {
	name string // slash-separated, relative to the profile dir; directories end in "/"
	path string // on disk
	info fs.FileInfo
}

// listing is the set of entries under the kept directories, taken with one walk.
type listing struct {
	entries []entry
	files   int
	bytes   int64
}

// listProfile walks the kept directories of profile. Kept directories that do not exist are
// skipped. Symlinks and other non-regular files are skipped too: an archive never holds them.
func listProfile(profile string, kept []string) (*listing, error) {
	l := &listing{}
	for _, k := range kept {
		root := filepath.Join(profile, filepath.FromSlash(k))
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == root && errors.Is(err, fs.ErrNotExist) {
					return fs.SkipDir
				}
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%w: %s vanished", ErrProfileChanged, p)
				}
				return err
			}
			if !d.Type().IsRegular() && !d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%w: %s vanished", ErrProfileChanged, p)
				}
				return err
			}
			rel, err := filepath.Rel(profile, p)
			if err != nil {
				return err
			}
			name := filepath.ToSlash(rel)
			if d.IsDir() {
				name += "/"
			} else {
				if info.Size() > maxEntrySize {
					return fmt.Errorf("remoteauth: %s is %d bytes; files over 4 GiB cannot be archived", p, info.Size())
				}
				l.files++
				l.bytes += info.Size()
			}
			l.entries = append(l.entries, entry{name: name, path: p, info: info})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// fingerprint identifies the listing by name, size, modification time and mode of every entry.
// Two equal fingerprints mean, in practice, an unchanged profile: Chromium rewrites files through
// new names or changes their size and time.
func (l *listing) fingerprint() [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	for _, e := range l.entries {
		io.WriteString(h, e.name)
		h.Write([]byte{0})
		binary.LittleEndian.PutUint64(b[:], uint64(e.info.Size()))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], uint64(e.info.ModTime().UnixNano()))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], uint64(e.info.Mode()))
		h.Write(b[:])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// sameNames reports whether l and m hold the same entry names. A compaction of a LevelDB creates
// and deletes files; a snapshot across one may pair a MANIFEST with the wrong tables.
func (l *listing) sameNames(m *listing) bool {
	if len(l.entries) != len(m.entries) {
		return false
	}
	for i := range l.entries {
		if l.entries[i].name != m.entries[i].name {
			return false
		}
	}
	return true
}

// snapshotter writes a zip archive of a listing. Files are read and compressed by parallel
// workers, and written in listing order, each with its CRC and sizes in the local header (no data
// descriptors), so that every zip reader, including the streaming unzipper RemoteAuth uses, reads
// the archive. Memory stays bounded: at most window files of up to maxBufferedEntry bytes are in
// flight.
type snapshotter struct {
	level   int // flate level, 1–9
	workers int
}

// compressed is a worker's result for one entry.
type compressed struct {
	header *zip.FileHeader
	data   *[]byte // the entry's data, from the snapshot's buffers; nil for a directory or a file to stream
	err    error
}

// buffers is the free list of the buffers that hold files in flight. One snapshot has a fixed
// number of them, each grown to the largest file it held, so that the memory of a snapshot is
// bounded by that number times the largest file buffered (maxBufferedEntry), and no garbage is
// made file after file.
type buffers chan *[]byte

func newBuffers(n int) buffers {
	b := make(buffers, n)
	for range n {
		b <- new([]byte)
	}
	return b
}

// get returns a free buffer with a capacity of at least n, waiting for one to be put back. A
// buffer grows to n rounded up to a MiB, so that files of similar sizes reuse it.
func (b buffers) get(n int) *[]byte {
	buf := <-b
	if cap(*buf) < n {
		*buf = make([]byte, 0, (n+1<<20-1)&^(1<<20-1))
	}
	*buf = (*buf)[:0]
	return buf
}

func (b buffers) put(buf *[]byte) { b <- buf }

// errNoGain stops compressing a file whose deflated form would not be smaller: it is stored.
var errNoGain = errors.New("deflate does not shrink the data")

// boundedWriter appends to a buffer and refuses to grow it past its capacity.
type boundedWriter struct{ b []byte }

func (w *boundedWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > cap(w.b) {
		return 0, errNoGain
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// write writes the archive of l to w. It returns an error wrapping ErrProfileChanged when the
// profile changed under it in a way that calls for a new snapshot.
func (s *snapshotter) write(ctx context.Context, w io.Writer, l *listing) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// At most window entries are in flight: each worker holds two buffers while it compresses a
	// file (the file and its deflated form), a prepared entry holds one.
	window := s.workers + 1
	free := newBuffers(s.workers + window)
	results := make([]chan compressed, len(l.entries))
	for i := range results {
		results[i] = make(chan compressed, 1)
	}
	jobs := make(chan int)
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: stops the feeder and the workers on an early return

	wg.Go(func() {
		defer close(jobs)
		for i := range l.entries {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	})
	for range s.workers {
		wg.Go(func() {
			fw, _ := flate.NewWriter(nil, s.level)
			for i := range jobs {
				results[i] <- s.prepare(&l.entries[i], fw, free)
			}
		})
	}

	zw := zip.NewWriter(w)
	for i := range l.entries {
		var r compressed
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := r.err
		if err == nil {
			err = s.writeEntry(zw, &l.entries[i], r)
		}
		if r.data != nil {
			free.put(r.data)
		}
		if err != nil {
			return err
		}
		<-sem
	}
	return zw.Close()
}

// writeEntry adds one prepared entry to zw.
func (s *snapshotter) writeEntry(zw *zip.Writer, e *entry, r compressed) error {
	if r.header == nil { // too large to buffer: stream it
		return s.streamFile(zw, e)
	}
	fw, err := zw.CreateRaw(r.header)
	if err != nil {
		return err
	}
	if r.data != nil {
		_, err = fw.Write(*r.data)
	}
	return err
}

// header returns the zip header of e, without sizes and CRC.
func header(e *entry) *zip.FileHeader {
	fh := &zip.FileHeader{Name: e.name, Modified: e.info.ModTime()}
	fh.SetMode(e.info.Mode())
	return fh
}

// prepare reads and compresses one entry into memory, or leaves a large file for streaming.
func (s *snapshotter) prepare(e *entry, fw *flate.Writer, free buffers) compressed {
	if e.info.IsDir() {
		return compressed{header: header(e)}
	}
	if e.info.Size() > maxBufferedEntry {
		return compressed{}
	}
	raw := free.get(int(e.info.Size()) + 1)
	info, err := readStable(e.path, raw)
	if err != nil {
		free.put(raw)
		return compressed{err: err}
	}
	fh := header(e)
	fh.Modified = info.ModTime()
	fh.UncompressedSize64 = uint64(len(*raw))
	fh.CRC32 = crc32.ChecksumIEEE(*raw)
	fh.Method = zip.Store
	data := raw
	// Deflate into a buffer no larger than the file: if it would not fit, storing is smaller.
	out := free.get(len(*raw))
	bw := boundedWriter{b: *out}
	fw.Reset(&bw)
	if _, err := fw.Write(*raw); err == nil && fw.Close() == nil && len(bw.b) < len(*raw) {
		fh.Method = zip.Deflate
		*out = bw.b
		data, out = out, raw
	}
	free.put(out)
	fh.CompressedSize64 = uint64(len(*data))
	return compressed{header: fh, data: data}
}

// readStable reads the file at path into buf, growing it if need be. A file whose size or time
// changes while it is read is read again, up to fileReadAttempts times; then its last reading is
// kept (LevelDB writes changing files only by appending, and a log cut short is read as if the
// writer had stopped there). A file that vanished is an ErrProfileChanged.
func readStable(path string, buf *[]byte) (fs.FileInfo, error) {
	for attempt := 1; ; attempt++ {
		before, after, err := readOnce(path, buf)
		if err != nil {
			return nil, err
		}
		if sameVersion(before, after) || attempt == fileReadAttempts {
			return after, nil
		}
	}
}

// readOnce reads the whole file into buf. It reads one byte more than the file's size, to see a
// file that grew after its size was taken.
func readOnce(path string, buf *[]byte) (before, after fs.FileInfo, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s vanished", ErrProfileChanged, path)
		}
		return nil, nil, err
	}
	defer f.Close()
	if before, err = f.Stat(); err != nil {
		return nil, nil, err
	}
	want := int(before.Size()) + 1
	if want > maxBufferedEntry+1 {
		return nil, nil, fmt.Errorf("%w: %s grew while it was read", ErrProfileChanged, path)
	}
	if cap(*buf) < want {
		*buf = make([]byte, 0, want)
	}
	n, err := io.ReadFull(f, (*buf)[:want])
	*buf = (*buf)[:n]
	switch {
	case err == nil: // one byte more than its size: it grew
		after = growing{before}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		if after, err = f.Stat(); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, err
	}
	return before, after, nil
}

// growing is the FileInfo of a file seen growing while it was read: its size is unknown.
type growing struct{ fs.FileInfo }

func (g growing) Size() int64 { return -1 }

func sameVersion(a, b fs.FileInfo) bool {
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// streamFile adds a file too large to buffer: a first pass computes its CRC and compressed size,
// a second pass writes it. If the file changed between the passes the archive cannot be mended
// (its header is written), so the snapshot is abandoned.
func (s *snapshotter) streamFile(zw *zip.Writer, e *entry) error {
	f, err := os.Open(e.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s vanished", ErrProfileChanged, e.path)
		}
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	if size > maxEntrySize {
		return fmt.Errorf("remoteauth: %s is %d bytes; files over 4 GiB cannot be archived", e.path, size)
	}
	fw, _ := flate.NewWriter(nil, s.level)
	var cw countingWriter
	fw.Reset(&cw)
	crc := crc32.NewIEEE()
	n, err := io.Copy(io.MultiWriter(crc, fw), io.NewSectionReader(f, 0, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%w: %s shrank while it was read", ErrProfileChanged, e.path)
	}
	fw.Close()
	fh := header(e)
	fh.Modified = info.ModTime()
	fh.CRC32 = crc.Sum32()
	fh.UncompressedSize64 = uint64(size)
	fh.Method = zip.Deflate
	fh.CompressedSize64 = uint64(cw.n)
	if cw.n >= size {
		fh.Method = zip.Store
		fh.CompressedSize64 = uint64(size)
	}
	dst, err := zw.CreateRaw(fh)
	if err != nil {
		return err
	}
	crc.Reset()
	src := io.TeeReader(io.NewSectionReader(f, 0, size), crc)
	var written int64
	if fh.Method == zip.Store {
		written, err = io.Copy(dst, src)
	} else {
		cw := countingWriter{w: dst}
		fw.Reset(&cw)
		if _, err = io.Copy(fw, src); err == nil {
			err = fw.Close()
		}
		written = cw.n
	}
	if err != nil {
		return err
	}
	if written != int64(fh.CompressedSize64) || crc.Sum32() != fh.CRC32 {
		return fmt.Errorf("%w: %s was rewritten while it was read", ErrProfileChanged, e.path)
	}
	return nil
}

// countingWriter counts the bytes written through it to w (or discards them when w is nil).
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.w == nil {
		c.n += int64(len(p))
		return len(p), nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
