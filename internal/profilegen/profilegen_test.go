package profilegen

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// generate makes a profile in a fresh temporary directory.
func generate(t testing.TB, size, seed int64) (string, Stats) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "RemoteAuth-test")
	st, err := Generate(context.Background(), dir, Options{Size: size, Seed: seed})
	if err != nil {
		t.Fatalf("Generate(size %d, seed %d): %v", size, seed, err)
	}
	return dir, st
}

// treeDigest hashes every path, mode, size and content under dir.
func treeDigest(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %v %d\n", filepath.ToSlash(rel), fi.Mode(), fi.Size())
		if d.Type().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// walkFiles calls fn for every regular file under dir with its slash path
// relative to dir.
func walkFiles(t testing.TB, dir string, fn func(rel string, fi fs.FileInfo)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fn(filepath.ToSlash(rel), fi)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func isKept(rel string) bool {
	for _, k := range KeptDirs() {
		if strings.HasPrefix(rel, k+"/") {
			return true
		}
	}
	return false
}

func TestGenerateDeterministic(t *testing.T) {
	const size = 6 << 20
	ref, _ := generate(t, size, 42)
	want := treeDigest(t, ref)
	tests := []struct {
		name string
		seed int64
		same bool
	}{
		{"same seed", 42, true},
		{"other seed", 43, false},
		{"negative seed", -42, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := generate(t, size, tt.seed)
			if got := treeDigest(t, dir); (got == want) != tt.same {
				t.Errorf("seed %d: digest %s, seed 42: %s; want same=%v", tt.seed, got, want, tt.same)
			}
		})
	}
}

func TestGenerateSizeAndShare(t *testing.T) {
	tests := []struct {
		name string
		size int64 // 0: DefaultSize
	}{
		{"minimum", MinSize},
		{"odd", 3<<20 + 12345},
		{"16MiB", 16 << 20},
		{"default", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, st := generate(t, tt.size, 7)
			want := tt.size
			if want == 0 {
				want = DefaultSize
			}
			if d := math.Abs(float64(st.Bytes-want)) / float64(want); d > 0.01 {
				t.Errorf("Stats.Bytes = %d, want %d ± 1%%", st.Bytes, want)
			}
			var disk Stats
			walkFiles(t, dir, func(rel string, fi fs.FileInfo) {
				disk.add(&fileSpec{size: fi.Size(), kept: isKept(rel)})
			})
			if disk != st {
				t.Errorf("on disk %+v, Stats %+v", disk, st)
			}
			if share := float64(st.KeptBytes) / float64(st.Bytes); share < 0.40 || share > 0.45 {
				t.Errorf("kept share %.3f, want 0.40–0.45", share)
			}
		})
	}
}

// TestPlanScale checks big profiles without writing them.
func TestPlanScale(t *testing.T) {
	blobRE := regexp.MustCompile(`^` + regexp.QuoteMeta(idbBlobDir) + `/(\d+)/([0-9a-f]{2})/([0-9a-f]+)$`)
	tests := []struct {
		size               int64
		minKept, maxKept   int
		minTotal, maxTotal int
	}{
		{1 << 30, 8500, 9500, 9500, 12000},
		{4 << 30, 34000, 38000, 38000, 48000},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(tt.size>>20, 10)+"MiB", func(t *testing.T) {
			p := newPlan(tt.size, 1)
			var st Stats
			for i := range p.files {
				f := &p.files[i]
				st.add(f)
				if m := blobRE.FindStringSubmatch(f.path); m != nil {
					n, _ := strconv.ParseUint(m[3], 16, 64)
					if want := fmt.Sprintf("%02x", (n>>8)&0xff); m[2] != want {
						t.Errorf("%s: blob %x in subdirectory %s, want %s", f.path, n, m[2], want)
					}
					if f.size < 1 || f.size > 64<<10 {
						t.Errorf("%s: blob of %d bytes", f.path, f.size)
					}
				}
			}
			if st.Bytes != tt.size {
				t.Errorf("planned %d bytes, want %d", st.Bytes, tt.size)
			}
			if share := float64(st.KeptBytes) / float64(st.Bytes); share < 0.40 || share > 0.45 {
				t.Errorf("kept share %.3f", share)
			}
			if st.KeptFiles < tt.minKept || st.KeptFiles > tt.maxKept || st.Files < tt.minTotal || st.Files > tt.maxTotal {
				t.Errorf("%d kept files of %d, want %d–%d of %d–%d", st.KeptFiles, st.Files, tt.minKept, tt.maxKept, tt.minTotal, tt.maxTotal)
			}
			t.Logf("%+v", st)
		})
	}
}

func TestLayout(t *testing.T) {
	dir, _ := generate(t, 40<<20, 3)
	wantFiles := []string{
		"Local State", "First Run", "Last Version", "Variations", "CrashpadMetrics-active.pma",
		"Default/Preferences", "Default/Secure Preferences", "Default/History", "Default/Network/Cookies",
		"Default/Cache/Cache_Data/index", "Default/Cache/Cache_Data/data_0", "Default/Cache/Cache_Data/data_3",
		"Default/Cache/Cache_Data/f_000001",
		"Default/Code Cache/js/index", "Default/Code Cache/js/index-dir/the-real-index",
		"Default/Code Cache/wasm/index", "Default/GPUCache/index", "Default/GPUCache/data_1",
		"Default/Service Worker/ScriptCache/index",
		"Default/Local Storage/leveldb/000003.log", "Default/Local Storage/leveldb/CURRENT",
		"Default/Local Storage/leveldb/LOCK", "Default/Local Storage/leveldb/LOG",
		"Default/Local Storage/leveldb/MANIFEST-000001", "Default/Local Storage/leveldb/000005.ldb",
		idbDir + "/000003.log", idbDir + "/CURRENT", idbDir + "/LOCK", idbDir + "/LOG",
		idbDir + "/MANIFEST-000001", idbDir + "/000005.ldb",
	}
	for _, d := range []string{"Default/Service Worker/CacheStorage", idbBlobDir + "/1/00", idbBlobDir + "/1/01", idbBlobDir + "/3/00"} {
		if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(d))); err != nil || !fi.IsDir() {
			t.Errorf("missing directory %s: %v", d, err)
		}
	}
	for _, f := range wantFiles {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			t.Errorf("missing %s: %v", f, err)
			continue
		}
		if !fi.Mode().IsRegular() {
			t.Errorf("%s is not a regular file", f)
		}
	}
	for _, f := range []string{"Default/Local Storage/leveldb/CURRENT", idbDir + "/CURRENT"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != "MANIFEST-000001\n" {
			t.Errorf("%s = %q", f, b)
		}
	}
	for _, f := range []string{"Local State", "Default/Preferences", "Default/Secure Preferences"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); !json.Valid(b) {
			t.Errorf("%s is not valid JSON", f)
		}
	}
	// Other directories and their counts.
	counts := map[string]int{}
	walkFiles(t, dir, func(rel string, fi fs.FileInfo) {
		if fi.Mode().Perm() != filePerm {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), fs.FileMode(filePerm))
		}
		switch {
		case strings.HasPrefix(rel, "Default/Service Worker/CacheStorage/"):
			counts["CacheStorage"]++
		case strings.HasPrefix(rel, idbBlobDir+"/"):
			counts["blob"]++
		case strings.HasPrefix(rel, "Default/Code Cache/js/"):
			counts["js"]++
		}
	})
	if counts["CacheStorage"] < 5 || counts["js"] < 5 || counts["blob"] < 300 {
		t.Errorf("file counts %v", counts)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, _ := d.Info(); p != dir && fi.Mode().Perm() != dirPerm {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), fs.FileMode(dirPerm))
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestIndexedDBTableSizes(t *testing.T) {
	dir, _ := generate(t, 32<<20, 5)
	ents, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(idbDir)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if path.Ext(e.Name()) != ".ldb" {
			continue
		}
		n++
		fi, _ := e.Info()
		if fi.Size() < 2<<20 || fi.Size() > 4<<20 {
			t.Errorf("%s: %d bytes, want 2–4 MiB", e.Name(), fi.Size())
		}
	}
	if n < 2 {
		t.Errorf("%d tables, want at least 2", n)
	}
}

func TestTableSizesAllProfiles(t *testing.T) {
	for _, size := range []int64{12 << 20, 20 << 20, 33 << 20, 100 << 20, 1 << 30, 3<<30 + 1} {
		p := newPlan(size, size)
		for _, f := range p.files {
			if strings.HasPrefix(f.path, idbDir+"/") && strings.HasSuffix(f.path, ".ldb") && (f.size < 2<<20 || f.size > 4<<20) {
				t.Errorf("size %d: %s has %d bytes", size, f.path, f.size)
			}
		}
	}
}

func flateSize(t testing.TB, w *flate.Writer, r io.Reader) int64 {
	t.Helper()
	var c countWriter
	w.Reset(&c)
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return int64(c)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func TestCompressibility(t *testing.T) {
	fw, _ := flate.NewWriter(nil, 6)

	// The compressible half: corpus windows as the mixer takes them.
	c := corpus()
	r := rand.New(rand.NewPCG(1, 2))
	var in, out int64
	for range 32 {
		off := r.IntN(len(c) - segmentSize)
		in += segmentSize
		out += flateSize(t, fw, bytes.NewReader(c[off:off+segmentSize]))
	}
	if ratio := float64(out) / float64(in); ratio < 0.35 || ratio > 0.45 {
		t.Errorf("corpus windows deflate to %.3f of their size, want 0.35–0.45", ratio)
	}

	// The kept dirs, file by file as zip compresses them.
	dir, st := generate(t, 12<<20, 9)
	in, out = 0, 0
	walkFiles(t, dir, func(rel string, fi fs.FileInfo) {
		if !isKept(rel) {
			return
		}
		f, err := os.Open(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		in += fi.Size()
		out += flateSize(t, fw, f)
	})
	if in != st.KeptBytes {
		t.Fatalf("read %d kept bytes, Stats say %d", in, st.KeptBytes)
	}
	ratio := float64(out) / float64(in)
	t.Logf("kept dirs deflate to %.3f", ratio)
	if ratio < 0.65 || ratio > 0.75 {
		t.Errorf("kept dirs deflate to %.3f of their size, want 0.65–0.75", ratio)
	}
}

func TestChurn(t *testing.T) {
	const steps = 9
	dir, st := generate(t, 12<<20, 11)
	twin, _ := generate(t, 12<<20, 11)
	count := func(dir string) (tables, blobs, manifests int) {
		walkFiles(t, dir, func(rel string, fi fs.FileInfo) {
			switch {
			case strings.HasPrefix(rel, idbBlobDir+"/"):
				blobs++
			case strings.HasSuffix(rel, ".ldb"):
				tables++
			case strings.Contains(rel, "/MANIFEST-") && isKept(rel):
				manifests++
			case strings.HasSuffix(rel, ".dbtmp"):
				t.Errorf("leftover %s", rel)
			}
		})
		return
	}
	tables0, blobs0, _ := count(dir)
	if err := Churn(dir, 1, steps); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); err != nil {
		t.Fatalf("Check after Churn: %v", err)
	}
	tables, blobs, manifests := count(dir)
	if tables != tables0 || manifests != 2 || blobs != blobs0+(steps+1)/2 {
		t.Errorf("after churn: %d tables (was %d), %d manifests, %d blobs (was %d)", tables, tables0, manifests, blobs, blobs0)
	}
	dbs, _ := levelDBDirs(dir)
	for _, db := range dbs {
		cur, err := os.ReadFile(filepath.Join(db, "CURRENT"))
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(string(cur), "\n")
		if name == "MANIFEST-000001" {
			t.Errorf("%s: CURRENT still names %s", db, name)
		}
		if _, err := os.Stat(filepath.Join(db, name)); err != nil {
			t.Errorf("%s: CURRENT names %s: %v", db, name, err)
		}
	}
	var after Stats
	walkFiles(t, dir, func(rel string, fi fs.FileInfo) { after.add(&fileSpec{size: fi.Size(), kept: isKept(rel)}) })
	if d := math.Abs(float64(after.Bytes-st.Bytes)) / float64(st.Bytes); d > 0.10 {
		t.Errorf("churn changed the size from %d to %d", st.Bytes, after.Bytes)
	}

	if err := Churn(twin, 1, steps); err != nil {
		t.Fatal(err)
	}
	if a, b := treeDigest(t, dir), treeDigest(t, twin); a != b {
		t.Errorf("churn is not deterministic: %s != %s", a, b)
	}
}

func TestCheckFindsMissingTable(t *testing.T) {
	dir, _ := generate(t, 12<<20, 2)
	victim := filepath.Join(dir, filepath.FromSlash(idbDir), "000005.ldb")
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	err := Check(dir)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "000005") {
		t.Errorf("Check with a missing table = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(lsDir), "CURRENT"), []byte("MANIFEST-000009\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); err == nil || !strings.Contains(err.Error(), "missing manifest") {
		t.Errorf("Check with a dangling CURRENT = %v", err)
	}
	if err := Check(t.TempDir()); err == nil {
		t.Error("Check of an empty dir = nil")
	}
}

func TestManifestRoundTrip(t *testing.T) {
	s := &dbState{comparator: idbComparator, logNumber: 3, nextFile: 9000, lastSeq: 123456}
	for i := range 2000 { // several 32 KiB blocks: FIRST/MIDDLE/LAST fragments
		n := uint64(5 + 2*i)
		s.tables = append(s.tables, tableMeta{level: i % 4, number: n, size: 3 << 20,
			smallest: internalKey([]byte(fmt.Sprintf("key-%06d-a", n)), n), largest: internalKey([]byte(fmt.Sprintf("key-%06d-z", n)), n+1)})
	}
	b := encodeManifest(s)
	if len(b) < 2*logBlockSize {
		t.Fatalf("manifest of %d bytes is too small for this test", len(b))
	}
	got, err := decodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.comparator != s.comparator || got.logNumber != 3 || got.nextFile != 9000 || got.lastSeq != 123456 || len(got.tables) != len(s.tables) {
		t.Fatalf("decoded %+v", got)
	}
	for i := range got.tables {
		a, b := got.tables[i], s.tables[i]
		if a.level != b.level || a.number != b.number || a.size != b.size || !bytes.Equal(a.smallest, b.smallest) || !bytes.Equal(a.largest, b.largest) {
			t.Fatalf("table %d: got %+v, want %+v", i, a, b)
		}
	}
	b[len(b)/2] ^= 1
	if _, err := decodeManifest(b); err == nil {
		t.Error("decodeManifest accepted a corrupt manifest")
	}
}

func TestGenerateErrors(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		dir     string
		size    int64
		wantErr error
	}{
		{"too small", context.Background(), filepath.Join(t.TempDir(), "p"), MinSize - 1, nil},
		{"negative", context.Background(), filepath.Join(t.TempDir(), "p"), -1, nil},
		{"not empty", context.Background(), full, MinSize, nil},
		{"canceled", canceled, filepath.Join(t.TempDir(), "p"), MinSize, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Generate(tt.ctx, tt.dir, Options{Size: tt.size})
			if err == nil {
				t.Fatalf("Generate = %+v, nil", st)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Generate error %v, want %v", err, tt.wantErr)
			}
			if st.Files != 0 {
				t.Errorf("Stats %+v after error", st)
			}
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, size := range []int64{50 << 20, 200 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			b.SetBytes(size)
			root := b.TempDir()
			var files int
			for i := 0; b.Loop(); i++ {
				dir := filepath.Join(root, strconv.Itoa(i))
				st, err := Generate(context.Background(), dir, Options{Size: size, Seed: int64(i)})
				if err != nil {
					b.Fatal(err)
				}
				files += st.Files
				b.StopTimer()
				if err := os.RemoveAll(dir); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(files)/b.Elapsed().Seconds(), "files/s")
		})
	}
}
