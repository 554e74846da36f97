package reliability

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// Load test sizes: loadSessions sessions (loadSessionsShort with -short), each a profilegen
// profile of loadProfileSize bytes, of which 430 KiB are in the kept directories (a 300 KiB
// archive); session i is seed loadSeed+i, so every session's content is distinct.
const (
	loadSessions      = 200
	loadSessionsShort = 50
	loadProfileSize   = 1 << 20
	loadSeed          = 1000
	// loadCompression is the sessions' deflate level: the fastest, since 200 sessions compress
	// on one machine's cores (the default, 5, costs about twice the CPU here); each session
	// compresses one file at a time (Options.Concurrency 1), as 200 of them keep every core busy.
	loadCompression = 1
)

// loadProfiles are the load test's profiles, generated once per test binary: DataPath i holds
// the profile of session i, whose kept tree is trees[i].
type loadProfiles struct {
	dataPaths []string
	trees     []tree
	bytes     int64 // kept bytes, in all
}

var loadOnce struct {
	sync.Mutex
	n int
	p *loadProfiles
}

// loadClient is session i's ClientID.
func loadClient(i int) string { return fmt.Sprintf("load-%d", i) }

// getLoadProfiles generates n profiles, or returns those generated before for the same n. They
// live in a directory removed at the end of the test that generated them first, so the callers
// are subtests of one test, or a benchmark's iterations.
func getLoadProfiles(tb testing.TB, n int) *loadProfiles {
	tb.Helper()
	loadOnce.Lock()
	defer loadOnce.Unlock()
	if loadOnce.p != nil && loadOnce.n == n {
		return loadOnce.p
	}
	base := tb.TempDir()
	ss := &states{size: loadProfileSize}
	p := &loadProfiles{dataPaths: make([]string, n), trees: make([]tree, n)}
	for i := range n {
		p.dataPaths[i] = filepath.Join(base, fmt.Sprint(i))
		name, err := remoteauth.SessionName(loadClient(i))
		if err != nil {
			tb.Fatal(err)
		}
		profile := filepath.Join(p.dataPaths[i], name)
		if err := ss.generate(tb.Context(), profile, loadSeed+int64(i)); err != nil {
			tb.Fatal(err)
		}
		if p.trees[i], err = hashTree(profile, profilegen.KeptDirs()...); err != nil {
			tb.Fatal(err)
		}
	}
	for _, tr := range p.trees {
		for _, v := range tr {
			var size int64
			fmt.Sscanf(v, "%d:", &size)
			p.bytes += size
		}
	}
	tb.Cleanup(func() {
		loadOnce.Lock()
		loadOnce.p = nil
		loadOnce.Unlock()
	})
	loadOnce.n, loadOnce.p = n, p
	return p
}

// loadFigures is the outcome of one load run against one store.
type loadFigures struct {
	sessions       int
	bytes          int64 // kept bytes of all the profiles
	archiveBytes   int64 // bytes sent to the store
	backupWall     time.Duration
	backupErrors   int
	attempts       int // uploads started, retries included
	restoreWall    time.Duration
	restoreErrors  int
	mismatches     int // restored profiles that differ from their source
	firstErr       error
	firstMismatch  string
	maxBackupTime  time.Duration
	maxRestoreTime time.Duration
}

func (f loadFigures) String() string {
	return fmt.Sprintf("%d sessions, %.1f MiB kept, %.1f MiB of archives; backup, all at once: %v wall, %d errors, %d uploads, slowest %v; restore, all at once: %v wall, %d errors, %d not byte-identical, slowest %v",
		f.sessions, float64(f.bytes)/(1<<20), float64(f.archiveBytes)/(1<<20),
		f.backupWall.Round(time.Millisecond), f.backupErrors, f.attempts, f.maxBackupTime.Round(time.Millisecond),
		f.restoreWall.Round(time.Millisecond), f.restoreErrors, f.mismatches, f.maxRestoreTime.Round(time.Millisecond))
}

// runLoad backs up every profile of p at once over st, each with a Session of its own (default
// options), then restores each at once into a new directory and compares it with its source.
func runLoad(ctx context.Context, tb testing.TB, st remoteauth.Store, p *loadProfiles) loadFigures {
	n := len(p.dataPaths)
	f := loadFigures{sessions: n, bytes: p.bytes}
	var mu sync.Mutex
	fail := func(counter *int, err error) {
		mu.Lock()
		defer mu.Unlock()
		*counter++
		if f.firstErr == nil {
			f.firstErr = err
		}
	}

	sessions := make([]*remoteauth.Session, n)
	for i := range n {
		s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: loadClient(i), DataPath: p.dataPaths[i], Compression: loadCompression, Concurrency: 1})
		if err != nil {
			tb.Fatal(err)
		}
		sessions[i] = s
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, s := range sessions {
		wg.Go(func() {
			res, err := s.Backup(ctx)
			mu.Lock()
			f.archiveBytes += res.ArchiveSize
			f.attempts += res.Attempts
			f.maxBackupTime = max(f.maxBackupTime, res.Duration)
			mu.Unlock()
			if err != nil {
				fail(&f.backupErrors, err)
			}
		})
	}
	wg.Wait()
	f.backupWall = time.Since(start)
	// Hand over, as a process that stops does: Close uploads nothing (the profiles have not
	// changed) and releases the session leases, which the restoring Sessions take next.
	for _, s := range sessions {
		if err := s.Close(ctx); err != nil {
			fail(&f.backupErrors, err)
		}
	}

	restored := make([]*remoteauth.Session, n)
	for i := range n {
		s, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: loadClient(i), DataPath: tb.TempDir()})
		if err != nil {
			tb.Fatal(err)
		}
		restored[i] = s
	}
	start = time.Now()
	for _, s := range restored {
		wg.Go(func() {
			res, err := s.Restore(ctx)
			mu.Lock()
			f.maxRestoreTime = max(f.maxRestoreTime, res.Duration)
			mu.Unlock()
			switch {
			case err != nil:
				fail(&f.restoreErrors, err)
			case !res.Found:
				fail(&f.restoreErrors, fmt.Errorf("%s: no archive", s.Name()))
			}
		})
	}
	wg.Wait()
	f.restoreWall = time.Since(start)
	for i, s := range restored {
		got, err := hashTree(s.ProfileDir())
		if err != nil || !maps.Equal(p.trees[i], got) {
			f.mismatches++
			if f.firstMismatch == "" {
				f.firstMismatch = fmt.Sprintf("%s: %v %s", s.Name(), err, p.trees[i].diff(got))
			}
		}
	}
	for _, s := range restored {
		if err := s.Close(ctx); err != nil { // unchanged profiles: nothing is uploaded
			fail(&f.restoreErrors, err)
		}
	}
	return f
}

// TestLoad backs up loadSessions sessions at once over one store value of each real store,
// with its client's default connection pool (go-redis: 10 connections per GOMAXPROCS, waiting
// at most ReadTimeout+1 s = 6 s for one; pgxpool: max(4, NumCPU) connections, waiting within
// ctx; mongo-driver: 100 connections, waiting within ctx; AWS SDK: up to 2,048 connections per
// host, 10 kept idle), then restores them all at once, each into a new directory: every
// backup and restore succeeds (after the Session's default retries) and every profile comes
// back byte for byte. The figures are logged, for the README.
func TestLoad(t *testing.T) {
	n := loadSessions
	if testing.Short() {
		n = loadSessionsShort
	}
	p := getLoadProfiles(t, n)
	for _, s := range realStores {
		t.Run(s.name, func(t *testing.T) {
			srv := s.open(t)
			st := openStore(t, srv, srv.URL)
			f := runLoad(t.Context(), t, st, p)
			t.Logf("load %s: %v", srv.Name, f)
			if f.backupErrors+f.restoreErrors > 0 {
				t.Errorf("%d backups and %d restores failed; the first: %v", f.backupErrors, f.restoreErrors, f.firstErr)
			}
			if f.mismatches > 0 {
				t.Errorf("%d restored profiles differ from their source; the first: %s", f.mismatches, f.firstMismatch)
			}
		})
	}
}

// BenchmarkLoad is TestLoad as a benchmark: each iteration backs up and restores loadSessions
// sessions at once, and the figures are reported as metrics: sessions, MiB kept, backup and
// restore wall seconds, and errors (including restored profiles that differ).
func BenchmarkLoad(b *testing.B) {
	p := getLoadProfiles(b, loadSessions)
	for _, s := range realStores {
		b.Run(s.name, func(b *testing.B) {
			srv := s.open(b)
			st := openStore(b, srv, srv.URL)
			var f loadFigures
			for b.Loop() {
				f = runLoad(b.Context(), b, st, p)
			}
			b.ReportMetric(float64(f.sessions), "sessions")
			b.ReportMetric(float64(f.bytes)/(1<<20), "MiB-kept")
			b.ReportMetric(f.backupWall.Seconds(), "backup-s")
			b.ReportMetric(f.restoreWall.Seconds(), "restore-s")
			b.ReportMetric(float64(f.backupErrors+f.restoreErrors+f.mismatches), "errors")
		})
	}
}
