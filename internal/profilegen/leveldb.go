package profilegen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// This file writes and reads LevelDB MANIFEST files in LevelDB's real format
// (the log format of db/log_format.h holding VersionEdit records of
// db/version_edit.cc), so that the LevelDB directories of a generated profile
// are as checkable as Chromium's: CURRENT names a MANIFEST, the MANIFEST
// names the live table files. Table files and .log files hold filler bytes,
// not real SSTables or write batches.

const (
	logBlockSize  = 32 << 10
	logHeaderSize = 7

	recFull   = 1
	recFirst  = 2
	recMiddle = 3
	recLast   = 4

	tagComparator     = 1
	tagLogNumber      = 2
	tagNextFileNumber = 3
	tagLastSequence   = 4
	tagCompactPointer = 5
	tagDeletedFile    = 6
	tagNewFile        = 7
	tagPrevLogNumber  = 9
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// tableMeta is a live table file as a MANIFEST records it.
type tableMeta struct {
	level    int
	number   uint64
	size     uint64
	smallest []byte // internal keys: user key + 8-byte (sequence<<8 | type)
	largest  []byte
}

// dbState is what a MANIFEST describes.
type dbState struct {
	comparator string
	logNumber  uint64
	nextFile   uint64
	lastSeq    uint64
	tables     []tableMeta // sorted by number
}

// encodeManifest returns the bytes of a fresh MANIFEST for s: like LevelDB's
// VersionSet::WriteSnapshot, one record with the comparator and every live
// file, then one with the log number, next file number and last sequence.
func encodeManifest(s *dbState) []byte {
	var snap []byte
	snap = binary.AppendUvarint(snap, tagComparator)
	snap = appendLenPrefixed(snap, []byte(s.comparator))
	for _, t := range s.tables {
		snap = binary.AppendUvarint(snap, tagNewFile)
		snap = binary.AppendUvarint(snap, uint64(t.level))
		snap = binary.AppendUvarint(snap, t.number)
		snap = binary.AppendUvarint(snap, t.size)
		snap = appendLenPrefixed(snap, t.smallest)
		snap = appendLenPrefixed(snap, t.largest)
	}
	var edit []byte
	edit = binary.AppendUvarint(edit, tagLogNumber)
	edit = binary.AppendUvarint(edit, s.logNumber)
	edit = binary.AppendUvarint(edit, tagPrevLogNumber)
	edit = binary.AppendUvarint(edit, 0)
	edit = binary.AppendUvarint(edit, tagNextFileNumber)
	edit = binary.AppendUvarint(edit, s.nextFile)
	edit = binary.AppendUvarint(edit, tagLastSequence)
	edit = binary.AppendUvarint(edit, s.lastSeq)

	var w logWriter
	w.add(snap)
	w.add(edit)
	return w.b
}

// manifestOverhead bounds the MANIFEST size of a database with n tables
// whose user keys are at most keyLen bytes long.
func manifestOverhead(n, keyLen int) int64 {
	perTable := 1 + 1 + 10 + 10 + 2*(1+keyLen+8)
	return 128 + int64(n*perTable)*(logBlockSize+logHeaderSize)/logBlockSize + logHeaderSize
}

func appendLenPrefixed(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// internalKey returns user key k with a value-type trailer at sequence seq.
func internalKey(k []byte, seq uint64) []byte {
	return binary.LittleEndian.AppendUint64(slices.Clip(k), seq<<8|1)
}

// logWriter frames records in LevelDB's log format.
type logWriter struct{ b []byte }

func (w *logWriter) add(rec []byte) {
	first := true
	for {
		left := logBlockSize - len(w.b)%logBlockSize
		if left < logHeaderSize {
			w.b = append(w.b, make([]byte, left)...) // trailer padding
			left = logBlockSize
		}
		n := min(len(rec), left-logHeaderSize)
		last := n == len(rec)
		typ := byte(recMiddle)
		switch {
		case first && last:
			typ = recFull
		case first:
			typ = recFirst
		case last:
			typ = recLast
		}
		crc := crc32.Update(crc32.Checksum([]byte{typ}, castagnoli), castagnoli, rec[:n])
		w.b = binary.LittleEndian.AppendUint32(w.b, maskCRC(crc))
		w.b = binary.LittleEndian.AppendUint16(w.b, uint16(n))
		w.b = append(w.b, typ)
		w.b = append(w.b, rec[:n]...)
		rec = rec[n:]
		first = false
		if last {
			return
		}
	}
}

func maskCRC(c uint32) uint32 { return (c>>15 | c<<17) + 0xa282ead8 }

// readLogRecords splits a LevelDB log file into its records, checking CRCs.
func readLogRecords(data []byte) ([][]byte, error) {
	var recs [][]byte
	var cur []byte
	inRec := false
	for off := 0; off < len(data); {
		left := logBlockSize - off%logBlockSize
		if left < logHeaderSize {
			off += left
			continue
		}
		if off+logHeaderSize > len(data) {
			return recs, errors.New("truncated record header")
		}
		h := data[off : off+logHeaderSize]
		n := int(binary.LittleEndian.Uint16(h[4:]))
		typ := h[6]
		if typ == 0 && n == 0 { // preallocated zeros
			off += left
			continue
		}
		if off+logHeaderSize+n > len(data) || logHeaderSize+n > left {
			return recs, errors.New("truncated record")
		}
		p := data[off+logHeaderSize : off+logHeaderSize+n]
		crc := crc32.Update(crc32.Checksum([]byte{typ}, castagnoli), castagnoli, p)
		if maskCRC(crc) != binary.LittleEndian.Uint32(h) {
			return recs, fmt.Errorf("checksum mismatch at offset %d", off)
		}
		off += logHeaderSize + n
		switch typ {
		case recFull:
			recs = append(recs, slices.Clone(p))
			inRec = false
		case recFirst:
			cur, inRec = slices.Clone(p), true
		case recMiddle, recLast:
			if !inRec {
				return recs, fmt.Errorf("orphan record fragment at offset %d", off)
			}
			cur = append(cur, p...)
			if typ == recLast {
				recs = append(recs, cur)
				inRec = false
			}
		default:
			return recs, fmt.Errorf("unknown record type %d", typ)
		}
	}
	return recs, nil
}

// decodeManifest replays the VersionEdits of a MANIFEST.
func decodeManifest(data []byte) (*dbState, error) {
	recs, err := readLogRecords(data)
	if err != nil {
		return nil, err
	}
	s := &dbState{}
	live := map[uint64]tableMeta{}
	for _, rec := range recs {
		d := decoder{b: rec}
		for len(d.b) > 0 && d.err == nil {
			switch tag := d.uvarint(); tag {
			case tagComparator:
				s.comparator = string(d.bytes())
			case tagLogNumber:
				s.logNumber = d.uvarint()
			case tagPrevLogNumber:
				d.uvarint()
			case tagNextFileNumber:
				s.nextFile = d.uvarint()
			case tagLastSequence:
				s.lastSeq = d.uvarint()
			case tagCompactPointer:
				d.uvarint()
				d.bytes()
			case tagDeletedFile:
				d.uvarint()
				delete(live, d.uvarint())
			case tagNewFile:
				t := tableMeta{level: int(d.uvarint()), number: d.uvarint(), size: d.uvarint()}
				t.smallest, t.largest = d.bytes(), d.bytes()
				live[t.number] = t
			default:
				if d.err == nil {
					d.err = fmt.Errorf("unknown VersionEdit tag %d", tag)
				}
			}
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	for _, t := range live {
		s.tables = append(s.tables, t)
	}
	slices.SortFunc(s.tables, func(a, b tableMeta) int { return cmpUint(a.number, b.number) })
	return s, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint in VersionEdit")
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("truncated VersionEdit")
		d.b = nil
		return nil
	}
	p := slices.Clone(d.b[:n])
	d.b = d.b[n:]
	return p
}

// readDB reads CURRENT and the MANIFEST it names in LevelDB directory db.
func readDB(db string) (manifest string, s *dbState, err error) {
	cur, err := os.ReadFile(filepath.Join(db, "CURRENT"))
	if err != nil {
		return "", nil, err
	}
	name := strings.TrimSuffix(string(cur), "\n")
	if !strings.HasPrefix(name, "MANIFEST-") || strings.ContainsAny(name, "/\\\n") || len(cur) == len(name) {
		return "", nil, fmt.Errorf("%s: CURRENT is malformed: %q", db, cur)
	}
	data, err := os.ReadFile(filepath.Join(db, name))
	if err != nil {
		return "", nil, fmt.Errorf("%s: CURRENT names a missing manifest: %w", db, err)
	}
	s, err = decodeManifest(data)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %s: %w", db, name, err)
	}
	return name, s, nil
}

// tableFileName is LevelDB's TableFileName.
func tableFileName(n uint64) string { return fmt.Sprintf("%06d.ldb", n) }

// checkDB checks one LevelDB directory: CURRENT names an existing MANIFEST,
// and every table it lists exists (as .ldb or legacy .sst) with its size.
func checkDB(db string) error {
	_, s, err := readDB(db)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range s.tables {
		fi, err := os.Stat(filepath.Join(db, tableFileName(t.number)))
		if errors.Is(err, fs.ErrNotExist) {
			fi, err = os.Stat(filepath.Join(db, fmt.Sprintf("%06d.sst", t.number)))
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: table %06d: %w", db, t.number, err))
		case uint64(fi.Size()) != t.size:
			errs = append(errs, fmt.Errorf("%s: table %06d has %d bytes, manifest says %d", db, t.number, fi.Size(), t.size))
		}
	}
	return errors.Join(errs...)
}

// levelDBDirs returns the LevelDB directories (those holding a CURRENT file)
// under the kept dirs of profile dir, sorted.
func levelDBDirs(dir string) ([]string, error) {
	var dbs []string
	for _, k := range KeptDirs() {
		root := filepath.Join(dir, filepath.FromSlash(k))
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == root && errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() && d.Name() == "CURRENT" {
				dbs = append(dbs, filepath.Dir(p))
			}
			if d.IsDir() && strings.HasSuffix(d.Name(), ".blob") {
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(dbs)
	return dbs, nil
}

// Check reports whether every LevelDB database under the kept dirs of the
// profile dir is complete, the condition under which Chromium opens it
// instead of discarding it: CURRENT names an existing MANIFEST and every
// table file that MANIFEST lists exists with the recorded size. A .log file
// is not checked (a torn log is harmless). Check works on generated profiles
// and on real Chromium profiles; it returns an error joining every problem
// found, or an error if the kept dirs hold no LevelDB database at all.
func Check(dir string) error {
	dbs, err := levelDBDirs(dir)
	if err != nil {
		return err
	}
	if len(dbs) == 0 {
		return fmt.Errorf("profilegen: no LevelDB database under %s", dir)
	}
	var errs []error
	for _, db := range dbs {
		errs = append(errs, checkDB(db))
	}
	return errors.Join(errs...)
}

// Churn mutates the generated profile in dir the way a running browser does,
// for tests of backups taken during writes. It performs n steps; step i
// works on the i-th LevelDB database under the kept dirs (round robin, in
// sorted path order) and, like a LevelDB memtable flush plus compaction:
//
//  1. appends 1–64 KiB to the database's .log file;
//  2. writes a new table file numbered with the next file number, about the
//     size of the oldest table (which it replaces), and, for IndexedDB, one
//     new file in the blob directory;
//  3. writes a new MANIFEST-N listing the new set of tables, then points
//     CURRENT at it by writing N.dbtmp and renaming it over CURRENT;
//  4. removes the old MANIFEST and the oldest table.
//
// Between steps every database is complete (see Check); during a step a
// reader can see a table or a MANIFEST appear or vanish. The result depends
// only on the profile, seed and n. Churn is not safe for concurrent use on
// one dir.
func Churn(dir string, seed int64, n int) error {
	dbs, err := levelDBDirs(dir)
	if err != nil {
		return err
	}
	if len(dbs) == 0 {
		return fmt.Errorf("profilegen: churn: no LevelDB database under %s", dir)
	}
	m := newMixer()
	for i := 0; i < n; i++ {
		if err := churnStep(dbs[i%len(dbs)], m, deriveSeed(uint64(seed), saltChurn, uint64(i))); err != nil {
			return fmt.Errorf("profilegen: churn step %d: %w", i, err)
		}
	}
	return nil
}

func churnStep(db string, m *mixer, seed [32]byte) error {
	oldManifest, s, err := readDB(db)
	if err != nil {
		return err
	}
	r := newRand(seed)
	fileSeed := func() [32]byte { return deriveSeed(r.Uint64()) }

	// 1. The write-ahead log grows.
	logf, err := os.OpenFile(filepath.Join(db, fmt.Sprintf("%06d.log", s.logNumber)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, filePerm)
	if err != nil {
		return err
	}
	err = m.write(logf, nil, 1<<10+r.Int64N(63<<10), fileSeed())
	if cerr := logf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	// 2. A compaction writes a new table replacing the oldest one.
	num := max(s.nextFile, 1)
	size := int64(64 << 10)
	var oldest *tableMeta
	if len(s.tables) > 0 {
		oldest = &s.tables[0]
		size = int64(oldest.size)
	}
	size += r.Int64N(128<<10) - 64<<10
	if size < 4<<10 {
		size = 4 << 10
	}
	if oldest != nil && oldest.size >= 2<<20 && oldest.size <= 4<<20 {
		size = min(max(size, 2<<20), 4<<20)
	}
	if err := writeNewFile(filepath.Join(db, tableFileName(num)), m, size, nil, fileSeed()); err != nil {
		return err
	}
	if strings.HasSuffix(db, ".indexeddb.leveldb") {
		if err := churnBlob(strings.TrimSuffix(db, ".leveldb")+".blob", m, r.Int64N(32<<10)+256, fileSeed()); err != nil {
			return err
		}
	}
	key := append(keyPrefix(s.comparator), byte(num>>24), byte(num>>16), byte(num>>8), byte(num))
	s.lastSeq += 1 + r.Uint64N(500)
	nt := tableMeta{level: 0, number: num, size: uint64(size),
		smallest: internalKey(append(slices.Clip(key), 'a'), s.lastSeq-1),
		largest:  internalKey(append(slices.Clip(key), 'z'), s.lastSeq)}
	if oldest != nil {
		s.tables = s.tables[1:]
	}
	s.tables = append(s.tables, nt)

	// 3. A new MANIFEST, then CURRENT switched atomically.
	manNum := num + 1
	s.nextFile = manNum + 1
	newManifest := fmt.Sprintf("MANIFEST-%06d", manNum)
	if err := os.WriteFile(filepath.Join(db, newManifest), encodeManifest(s), filePerm); err != nil {
		return err
	}
	tmp := filepath.Join(db, fmt.Sprintf("%06d.dbtmp", manNum))
	if err := os.WriteFile(tmp, []byte(newManifest+"\n"), filePerm); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(db, "CURRENT")); err != nil {
		return err
	}

	// 4. Obsolete files go.
	if oldManifest != newManifest {
		if err := os.Remove(filepath.Join(db, oldManifest)); err != nil {
			return err
		}
	}
	if oldest != nil {
		if err := os.Remove(filepath.Join(db, tableFileName(oldest.number))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// churnBlob adds one blob file to database 1 of blob directory dir, numbered
// one above the highest existing blob number.
func churnBlob(dir string, m *mixer, size int64, seed [32]byte) error {
	db := filepath.Join(dir, "1")
	subs, err := os.ReadDir(db)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var last uint64
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(db, sub.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if v, err := strconv.ParseUint(e.Name(), 16, 64); err == nil && v > last {
				last = v
			}
		}
	}
	p := filepath.Join(dir, filepath.FromSlash(blobPath(1, last+1)))
	if err := os.MkdirAll(filepath.Dir(p), dirPerm); err != nil {
		return err
	}
	return writeNewFile(p, m, size, nil, seed)
}

// blobPath is Chromium's IndexedDB blob file path inside the .blob
// directory: <database id>/<second byte of the number, %02x>/<number, %x>.
func blobPath(database int, number uint64) string {
	return fmt.Sprintf("%d/%02x/%x", database, (number>>8)&0xff, number)
}

// keyPrefix returns a user-key prefix typical of the database's comparator.
func keyPrefix(comparator string) []byte {
	if comparator == idbComparator {
		return []byte{0, 1, 1, 1}
	}
	return []byte("_https://web.whatsapp.com\x00\x01")
}
