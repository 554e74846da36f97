package remoteauth_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/wwebstore/wwebstore/internal/peakheap"
	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/remoteauth"
	"github.com/wwebstore/wwebstore/stores/file"
)

// benchSizes are the generated profiles the benchmarks run on. About 43 % of each is session
// data (the kept directories): 1 GiB holds about 440 MiB in 9,000 kept files, the shape of the
// profile RemoteAuth was measured on.
var benchSizes = []struct {
	name string
	size int64
}{
	{"50MB", 50 << 20},
	{"200MB", 200 << 20},
	{"1GB", 1 << 30},
}

// benchProfile generates a profile of size into a fresh directory and returns its Stats.
func benchProfile(b *testing.B, dataPath string, size int64) profilegen.Stats {
	b.Helper()
	stats, err := profilegen.Generate(b.Context(), filepath.Join(dataPath, "RemoteAuth-bench"), profilegen.Options{Size: size, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	return stats
}

func benchSession(b *testing.B, store remoteauth.Store, dataPath string) *remoteauth.Session {
	b.Helper()
	s, err := remoteauth.NewSession(store, &remoteauth.Options{ClientID: "bench", DataPath: dataPath})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// settle writes back dirty pages, so that each iteration starts with a clean page cache instead
// of paying for the previous iteration's writes.
func settle() {
	syscall.Sync()
}

// BenchmarkBackup backs up a generated profile to a filestore, as a first backup (the whole
// archive is made and uploaded). Metrics: MB/s of session data, archive-MiB, peak-heap-MiB (growth
// of the live heap during the backup), files.
//
//	go test -run '^$' -bench 'Backup$|Restore$' -benchtime 5x ./remoteauth/
func BenchmarkBackup(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			dataPath := b.TempDir()
			stats := benchProfile(b, dataPath, sz.size)
			store, err := filestore.New(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(stats.KeptBytes)
			var archive int64
			var peak float64
			for b.Loop() {
				b.StopTimer()
				s := benchSession(b, store, dataPath) // a new Session has no saved fingerprint
				settle()
				b.StartTimer()
				p := peakheap.Start()
				res, err := s.Backup(b.Context())
				peak = max(peak, float64(p.Stop())/(1<<20))
				if err != nil {
					b.Fatal(err)
				}
				archive = res.ArchiveSize
			}
			b.ReportMetric(float64(archive)/(1<<20), "archive-MiB")
			b.ReportMetric(peak, "peak-heap-MiB")
			b.ReportMetric(float64(stats.KeptFiles), "files")
		})
	}
}

// BenchmarkRestore restores a generated profile's archive from a filestore into an empty
// DataPath: fetch into a temporary file, check and extract, swap in.
func BenchmarkRestore(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			src := b.TempDir()
			stats := benchProfile(b, src, sz.size)
			store, err := filestore.New(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := benchSession(b, store, src).Backup(b.Context()); err != nil {
				b.Fatal(err)
			}
			os.RemoveAll(src)
			b.SetBytes(stats.KeptBytes)
			var peak float64
			for b.Loop() {
				// Each restore goes to a new directory, and the old ones are removed only at the
				// end: deleting thousands of files makes file creation slow for seconds afterwards
				// on this kind of disk, which a restore on a fresh container does not suffer.
				b.StopTimer()
				s := benchSession(b, store, filepath.Join(b.TempDir(), "restore"))
				settle()
				b.StartTimer()
				p := peakheap.Start()
				res, err := s.Restore(b.Context())
				peak = max(peak, float64(p.Stop())/(1<<20))
				if err != nil || res.Files != stats.KeptFiles {
					b.Fatalf("Restore = %+v, %v; want %d files", res, err, stats.KeptFiles)
				}
			}
			b.ReportMetric(peak, "peak-heap-MiB")
		})
	}
}

// BenchmarkBackupUnchanged measures the periodic backup of a profile that has not changed since
// the last save: a walk of the kept directories, nothing sent.
func BenchmarkBackupUnchanged(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			dataPath := b.TempDir()
			benchProfile(b, dataPath, sz.size)
			store, err := filestore.New(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			s := benchSession(b, store, dataPath)
			if _, err := s.Backup(b.Context()); err != nil {
				b.Fatal(err)
			}
			var sent int64
			for b.Loop() {
				res, err := s.Backup(b.Context())
				if err != nil || !res.Unchanged {
					b.Fatalf("Backup = %+v, %v; want unchanged", res, err)
				}
				sent += res.ArchiveSize
			}
			b.ReportMetric(float64(sent), "bytes-sent")
		})
	}
}
