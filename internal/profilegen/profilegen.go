package profilegen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	// DefaultSize is the profile size used when Options.Size is zero.
	DefaultSize = 50 << 20
	// MinSize is the smallest Options.Size accepted.
	MinSize = 1 << 20

	filePerm = 0o600
	dirPerm  = 0o700

	// keptShare is the share of the bytes under KeptDirs.
	keptShare = 0.43
	// keptFilesPerGiB is the number of files under KeptDirs per GiB of
	// profile, from the reference profile (8,969 files in its 1 GB).
	keptFilesPerGiB = 9000

	idbDir      = "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb"
	idbBlobDir  = "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob"
	lsDir       = "Default/Local Storage/leveldb"
	currentText = "MANIFEST-000001\n"
)

// KeptDirs returns the profile-relative directories (slash-separated) that
// RemoteAuth archives: "Default/IndexedDB" and "Default/Local Storage".
func KeptDirs() []string { return slices.Clone(keptDirs[:]) }

var keptDirs = [...]string{"Default/IndexedDB", "Default/Local Storage"}

// Options configures Generate. The zero value is valid.
type Options struct {
	// Size is the total number of bytes of the files to write; Generate
	// hits it exactly. Zero means DefaultSize; otherwise at least MinSize.
	Size int64
	// Seed selects the tree: equal Size and Seed give a byte-identical tree
	// (paths, contents, modes), wherever and however often it is generated.
	Seed int64
}

// Stats describes a generated tree. Kept counts the files under KeptDirs.
type Stats struct {
	Files     int
	Bytes     int64
	KeptFiles int
	KeptBytes int64
}

func (s *Stats) add(f *fileSpec) {
	s.Files++
	s.Bytes += f.size
	if f.kept {
		s.KeptFiles++
		s.KeptBytes += f.size
	}
}

// Generate writes a synthetic Chromium profile of opts.Size bytes into dir,
// which must be missing (it is created with mode 0700) or an empty
// directory. Files are written with mode 0600 and directories with 0700;
// nothing is fsynced. Several goroutines write files in parallel; ctx is
// checked before each file. On error or cancellation, the partial tree is
// left in dir and the Stats count the files completed.
func Generate(ctx context.Context, dir string, opts Options) (Stats, error) {
	size := opts.Size
	if size == 0 {
		size = DefaultSize
	}
	if size < MinSize {
		return Stats{}, fmt.Errorf("profilegen: size %d is below the minimum %d", size, MinSize)
	}
	if err := prepareDir(dir); err != nil {
		return Stats{}, fmt.Errorf("profilegen: %w", err)
	}
	p := newPlan(size, opts.Seed)
	for _, d := range p.dirs() {
		if err := os.Mkdir(filepath.Join(dir, filepath.FromSlash(d)), dirPerm); err != nil {
			return Stats{}, fmt.Errorf("profilegen: %w", err)
		}
	}

	var (
		next  atomic.Int64
		stop  atomic.Bool
		mu    sync.Mutex
		total Stats
		first error
		wg    sync.WaitGroup
	)
	workers := min(runtime.GOMAXPROCS(0), 8)
	for range workers {
		wg.Go(func() {
			m := newMixer()
			var st Stats
			var err error
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(p.files) {
					break
				}
				if err = ctx.Err(); err != nil {
					break
				}
				f := &p.files[i]
				err = writeNewFile(filepath.Join(dir, filepath.FromSlash(f.path)), m, f.size, f.head,
					deriveSeed(uint64(opts.Seed), saltFile, uint64(i)))
				if err != nil {
					err = fmt.Errorf("profilegen: %w", err)
					break
				}
				st.add(f)
			}
			mu.Lock()
			defer mu.Unlock()
			total.Files += st.Files
			total.Bytes += st.Bytes
			total.KeptFiles += st.KeptFiles
			total.KeptBytes += st.KeptBytes
			if err != nil {
				stop.Store(true)
				if first == nil {
					first = err
				}
			}
		})
	}
	wg.Wait()
	return total, first
}

// prepareDir creates dir, or checks that it is an empty directory.
func prepareDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, dirPerm)
	case err != nil:
		return err
	case len(ents) > 0:
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

// writeNewFile creates path (which must not exist) with head followed by
// mixed content up to size bytes.
func writeNewFile(path string, m *mixer, size int64, head []byte, seed [32]byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return err
	}
	err = m.write(f, head, size, seed)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileSpec is one planned file: head (possibly the whole content) then
// mixed content up to size bytes.
type fileSpec struct {
	path string // slash-separated, relative to the profile
	size int64
	head []byte
	kept bool
}

// plan is the whole tree, decided before anything is written. It holds
// only small heads, so it stays small (about 1 MiB per GiB of profile).
type plan struct {
	r     *rand.Rand
	g     *textGen
	scale float64 // for the fixed-size small files, 1 from 64 MiB up
	files []fileSpec
	seen  map[string]bool
}

func newPlan(size, seed int64) *plan {
	r := newRand(deriveSeed(uint64(seed), saltPlan))
	p := &plan{r: r, g: newTextGen(r), scale: min(1, float64(size)/(64<<20)), seen: map[string]bool{}}
	kept := int64(math.Round(float64(size) * keptShare))
	keptFiles := max(24, int(math.Round(keptFilesPerGiB*float64(size)/(1<<30))))
	p.planRest(size - kept)
	p.planKept(kept, keptFiles)
	return p
}

func (p *plan) add(name string, size int64, head []byte) {
	if p.seen[name] {
		panic("profilegen: duplicate path " + name)
	}
	p.seen[name] = true
	kept := false
	for _, k := range keptDirs {
		if strings.HasPrefix(name, k+"/") {
			kept = true
		}
	}
	p.files = append(p.files, fileSpec{path: name, size: max(size, int64(len(head))), head: head, kept: kept})
}

func (p *plan) text(name string, b []byte) { p.add(name, int64(len(b)), b) }

// dirs returns every directory of the plan, parents first.
func (p *plan) dirs() []string {
	set := map[string]bool{}
	for _, f := range p.files {
		for d := path.Dir(f.path); d != "." && !set[d]; d = path.Dir(d) {
			set[d] = true
		}
	}
	ds := make([]string, 0, len(set))
	for d := range set {
		ds = append(ds, d)
	}
	slices.Sort(ds) // a parent sorts before its children
	return ds
}

func (p *plan) bytes() int64 {
	var n int64
	for _, f := range p.files {
		n += f.size
	}
	return n
}

// scaled returns a fixed natural size scaled down for small profiles.
func (p *plan) scaled(n int64) int64 { return max(64, int64(float64(n)*p.scale)) }

// sqlite adds a fake SQLite database of about natural bytes and its journal.
func (p *plan) sqlite(name string, natural int64) {
	size := max(4096, p.scaled(natural)/4096*4096)
	p.add(name, size, sqliteHeader(size))
	p.add(name+"-journal", 0, nil)
}

// logUniform draws a size between lo and hi, log-uniformly: many small
// files, a few big ones, like caches and blob stores.
func (p *plan) logUniform(lo, hi int64) int64 {
	return int64(math.Exp(math.Log(float64(lo)) + p.r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

// fill adds files named by name() with log-uniform sizes in [lo, hi] that
// add up to exactly budget (the last one takes what is left).
func (p *plan) fill(budget, lo, hi int64, name func() string) {
	for budget > 0 {
		s := p.logUniform(lo, hi)
		if budget-s < lo {
			s = budget
		}
		p.add(name(), s, nil)
		budget -= s
	}
}

// hexName returns a fresh 16-hex-digit simple-cache entry hash.
func (p *plan) hexName(dir, suffix string) string {
	for {
		n := fmt.Sprintf("%s/%016x%s", dir, p.r.Uint64(), suffix)
		if !p.seen[n] {
			return n
		}
	}
}

// planRest plans the files outside KeptDirs: n bytes in all.
func (p *plan) planRest(n int64) {
	g := p.g
	p.text("Local State", g.localState())
	p.text("First Run", nil)
	p.text("Last Version", []byte(chromiumVersion))
	p.text("Variations", g.variations())
	p.add("CrashpadMetrics-active.pma", p.scaled(1<<20), nil)
	p.sqlite("first_party_sets.db", 48<<10)

	p.text("Default/Preferences", g.preferences())
	p.text("Default/Secure Preferences", g.securePreferences())
	p.sqlite("Default/History", 160<<10)
	p.sqlite("Default/Favicons", 20<<10)
	p.sqlite("Default/Web Data", 112<<10)
	p.sqlite("Default/Login Data", 40<<10)
	p.sqlite("Default/Top Sites", 20<<10)
	p.sqlite("Default/Shortcuts", 20<<10)
	p.add("Default/Visited Links", p.scaled(128<<10), []byte("VLnk"))
	p.sqlite("Default/Network/Cookies", 28<<10)
	p.text("Default/Network/Network Persistent State", g.networkPersistentState())
	p.text("Default/Network/TransportSecurity", g.transportSecurity())
	sessionTime := chromeTime(g.start.Add(3 * 3600e9))
	p.add("Default/Sessions/Session_"+sessionTime, p.scaled(24<<10), []byte("SNSS"))
	p.add("Default/Sessions/Tabs_"+sessionTime, p.scaled(4<<10), []byte("SNSS"))
	p.emptyLevelDB("Default/Session Storage", lsComparator, p.scaled(8<<10))
	p.emptyLevelDB("Default/Service Worker/Database", lsComparator, p.scaled(32<<10))

	// The bulky caches share what is left.
	caches := n - p.bytes()
	type group struct {
		weight float64
		plan   func(budget int64)
	}
	groups := []group{
		{0.34, func(b int64) { p.blockfileCache("Default/Cache/Cache_Data", b, 2<<20) }},
		{0.17, func(b int64) { p.simpleCache("Default/Code Cache/js", b, 4<<10, 1<<20) }},
		{0.10, func(b int64) { p.simpleCache("Default/Code Cache/wasm", b, 64<<10, 8<<20) }},
		{0.02, func(b int64) { p.blockfileCache("Default/GPUCache", b, 1<<20) }},
		{0.30, p.cacheStorage},
		{0.07, func(b int64) { p.simpleCache("Default/Service Worker/ScriptCache", b, 4<<10, 2<<20) }},
	}
	left := caches
	for i, gr := range groups {
		b := int64(float64(caches) * gr.weight)
		if i == len(groups)-1 {
			b = left
		}
		gr.plan(b)
		left -= b
	}
}

// blockfileCache lays out Chromium's blockfile disk cache: index, data_0..3
// block files and external f_XXXXXX files for big entries.
func (p *plan) blockfileCache(dir string, budget, fmax int64) {
	index := min(262512, budget/16)
	p.add(dir+"/index", index, nil)
	left := budget - index
	for i, percent := range []int64{3, 8, 8, 16} {
		s := (budget - index) * percent / 100
		p.add(fmt.Sprintf("%s/data_%d", dir, i), s, nil)
		left -= s
	}
	n := 0
	p.fill(left, 16<<10, fmax, func() string { n++; return fmt.Sprintf("%s/f_%06x", dir, n) })
}

// simpleCache lays out Chromium's simple disk cache: index,
// index-dir/the-real-index and one <hash>_0 file per entry.
func (p *plan) simpleCache(dir string, budget, lo, hi int64) {
	realIndex := min(max(budget/256, 64), 256<<10)
	p.add(dir+"/index", 24, nil)
	p.add(dir+"/index-dir/the-real-index", realIndex, nil)
	p.fill(budget-24-realIndex, lo, hi, func() string { return p.hexName(dir, "_0") })
}

// cacheStorage lays out Service Worker/CacheStorage for the WhatsApp origin:
// <origin hash>/index.txt and two caches, each a simple cache in <uuid>/.
func (p *plan) cacheStorage(budget int64) {
	dir := "Default/Service Worker/CacheStorage/" + p.g.hex(40)
	names := []string{"wa-static-v2", "wa-lazy-assets"}
	uuids := []string{p.g.uuid(), p.g.uuid()}
	idx := p.g.cacheStorageIndex(names, uuids)
	p.text(dir+"/index.txt", idx)
	budget -= int64(len(idx))
	first := budget * 4 / 5
	p.simpleCache(dir+"/"+uuids[0], first, 8<<10, 4<<20)
	p.simpleCache(dir+"/"+uuids[1], budget-first, 8<<10, 4<<20)
}

// emptyLevelDB adds a LevelDB database without tables: its data is all in
// the 000003.log of logSize bytes.
func (p *plan) emptyLevelDB(dir, comparator string, logSize int64) {
	s := &dbState{comparator: comparator, logNumber: 3, nextFile: 4, lastSeq: uint64(p.r.IntN(500))}
	p.text(dir+"/CURRENT", []byte(currentText))
	p.text(dir+"/LOCK", nil)
	p.text(dir+"/LOG", p.g.leveldbLOG(dir, nil))
	p.text(dir+"/MANIFEST-000001", encodeManifest(s))
	p.add(dir+"/000003.log", logSize, nil)
}

// planKept plans the files under KeptDirs: exactly k bytes in about
// nFiles files.
func (p *plan) planKept(k int64, nFiles int) {
	// Local Storage: 1.5 %, at most 8 MiB, in a log and 1–3 tables.
	ls := min(max(k*15/1000, 16<<10), 8<<20, k/8)
	nls := min(max(int((ls+1<<20)/(2<<20)), 1), 3)
	lsTables := p.tables(nls, (ls-4096)*55/100, false)
	p.levelDB(lsDir, lsComparator, ls, lsTables)

	// IndexedDB blobs: the many small files, 256 B to 64 KiB each.
	idbEst := int((k - ls) * 72 / 100 / (3 << 20))
	nBlobs := max(nFiles-(5+nls)-(5+idbEst), 8)
	sizes := make([]int64, nBlobs)
	var blobBytes int64
	for i := range sizes {
		sizes[i] = p.logUniform(256, 64<<10)
		blobBytes += sizes[i]
	}
	if limit := (k - ls) * 3 / 10; blobBytes > limit { // small profiles
		f := float64(limit) / float64(blobBytes)
		blobBytes = 0
		for i := range sizes {
			sizes[i] = max(1, int64(float64(sizes[i])*f))
			blobBytes += sizes[i]
		}
	}
	next := map[int]uint64{}
	for _, s := range sizes {
		db := 1
		if p.r.IntN(5) == 0 {
			db = 3
		}
		next[db] += 1 + uint64(p.r.IntN(8)/6) // Chromium leaves gaps where blobs were deleted
		p.add(idbBlobDir+"/"+blobPath(db, next[db]), s, nil)
	}

	// IndexedDB LevelDB: what is left, in 2–4 MiB tables and a log.
	r := k - ls - blobBytes
	logTarget := min(max(r/25, 4<<10), 4<<20)
	t := r - logTarget - int64(len(currentText))
	n := tableCount(t)
	t -= manifestOverhead(n, 9) + int64(2*n+2)*220 // MANIFEST and LOG
	p.levelDB(idbDir, idbComparator, r, p.tables(tableCount(t), t, true))
}

// tableCount returns how many tables of 2–4 MiB hold t bytes (at least 1).
func tableCount(t int64) int {
	const mib = 1 << 20
	n := int64(math.Round(float64(t) / (3 * mib)))
	lo, hi := (t+4*mib-1)/(4*mib), t/(2*mib)
	if lo <= hi {
		n = min(max(n, lo), hi)
	}
	return int(max(n, 1))
}

// tables plans n table files adding up to total bytes (sizes within 2–4 MiB
// when total/n is), numbered from 5 with gaps as LevelDB leaves them, placed
// in levels newest first (L0 then L1 up to 10 MiB, L2 up to 100 MiB…).
func (p *plan) tables(n int, total int64, idb bool) []tableMeta {
	total = max(total, int64(n))
	ts := make([]tableMeta, n)
	avg := total / int64(n)
	num := uint64(5)
	for i := range ts {
		ts[i].number = num
		num += 1 + uint64(p.r.IntN(3))
		ts[i].size = uint64(avg)
		if int64(i) < total%int64(n) {
			ts[i].size++
		}
	}
	// Jitter pairs of tables in opposite directions: the sum is kept.
	d := max(min(avg-2<<20, 4<<20-avg-1, 512<<10), 0)
	if avg < 2<<20 { // a small profile: no size range to keep
		d = avg / 8
	}
	for i := 0; i+1 < n; i += 2 {
		delta := uint64(p.r.Int64N(d + 1))
		ts[i].size += delta
		ts[i+1].size -= delta
	}
	var seq uint64
	prefix := keyPrefix(lsComparator)
	if idb {
		prefix = keyPrefix(idbComparator)
	}
	for i := range ts {
		key := append(slices.Clip(prefix), byte(ts[i].number>>24), byte(ts[i].number>>16), byte(ts[i].number>>8), byte(ts[i].number))
		seq += 100 + uint64(p.r.IntN(20000))
		ts[i].smallest = internalKey(append(slices.Clip(key), 'a'), seq)
		seq += 100 + uint64(p.r.IntN(20000))
		ts[i].largest = internalKey(append(slices.Clip(key), 'z'), seq)
	}
	level, room := 0, min(2, int64(n/4))
	for i := n - 1; i >= 0; i-- {
		for level == 0 && room <= 0 || level > 0 && room < int64(ts[i].size) {
			level++
			room = 10 << 20
			for l := 1; l < level; l++ {
				room *= 10
			}
		}
		ts[i].level = level
		if level == 0 {
			room--
		} else {
			room -= int64(ts[i].size)
		}
	}
	return ts
}

// levelDB adds a LevelDB database of exactly budget bytes holding tables;
// its 000003.log takes what the tables and metadata files leave.
func (p *plan) levelDB(dir, comparator string, budget int64, tables []tableMeta) {
	s := &dbState{comparator: comparator, logNumber: 3, nextFile: 6, tables: tables}
	for _, t := range tables {
		s.nextFile = max(s.nextFile, t.number+1)
		s.lastSeq = max(s.lastSeq, binaryTrailerSeq(t.largest))
	}
	s.lastSeq += uint64(p.r.IntN(1000))
	manifest := encodeManifest(s)
	logText := p.g.leveldbLOG(dir, tables)
	p.text(dir+"/CURRENT", []byte(currentText))
	p.text(dir+"/LOCK", nil)
	p.text(dir+"/LOG", logText)
	p.text(dir+"/MANIFEST-000001", manifest)
	left := budget - int64(len(currentText)+len(logText)+len(manifest))
	for _, t := range tables {
		p.add(dir+"/"+tableFileName(t.number), int64(t.size), nil)
		left -= int64(t.size)
	}
	if left < 0 {
		panic(fmt.Sprintf("profilegen: internal error: %s over budget by %d bytes", dir, -left))
	}
	p.add(dir+"/000003.log", left, nil)
}

// binaryTrailerSeq returns the sequence number of an internal key.
func binaryTrailerSeq(ik []byte) uint64 {
	if len(ik) < 8 {
		return 0
	}
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(ik[len(ik)-8+i])
	}
	return v >> 8
}
