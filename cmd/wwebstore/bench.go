package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/wwebstore/wwebstore/internal/peakheap"
	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// DefaultBenchSession is the session that bench saves, restores and deletes.
const DefaultBenchSession = "RemoteAuth-wwebstore-bench"

// benchPhase is one measured operation in bench's JSON document.
type benchPhase struct {
	Seconds         float64 `json:"seconds"`
	MiBPerSecond    float64 `json:"mib_per_second"`         // session data (uncompressed) per second
	ArchivePerSec   float64 `json:"archive_mib_per_second"` // archive bytes per second: the store's traffic
	PeakHeapBytes   uint64  `json:"peak_heap_bytes"`        // growth of the Go heap during the operation
	ArchiveSize     int64   `json:"archive_bytes"`
	Files           int     `json:"files"`
	UncompressedLen int64   `json:"bytes"`
}

// benchResult is the JSON document of bench.
type benchResult struct {
	Store        string     `json:"store"`
	Session      string     `json:"session"`
	ProfileBytes int64      `json:"profile_bytes"`
	ProfileFiles int        `json:"profile_files"`
	Backup       benchPhase `json:"backup"`
	Restore      benchPhase `json:"restore"`
	Verified     int        `json:"verified_files"`
}

func phase(d time.Duration, bytes, archive int64, files int, heap uint64) benchPhase {
	s := d.Seconds()
	p := benchPhase{Seconds: s, PeakHeapBytes: heap, ArchiveSize: archive, Files: files, UncompressedLen: bytes}
	if s > 0 {
		p.MiBPerSecond = float64(bytes) / (1 << 20) / s
		p.ArchivePerSec = float64(archive) / (1 << 20) / s
	}
	return p
}

func runBench(ctx context.Context, c *cli, args []string) error {
	fs := c.flags(`Measures backup and restore against your own store, so that you can size a deployment: it
generates a synthetic WhatsApp Web profile (about 43 % of it session data, the rest caches that are
not archived), backs it up to the store as session --session, restores it into a new directory,
checks the restored files byte for byte, and deletes the session from the store (unless --keep).
It prints the time, the throughput (MiB/s of session data, and of archive: the store's traffic)
and the peak growth of the Go heap of each. A session that exists already is not touched unless
--overwrite. The profile is written to a temporary directory (or --dir), removed at the end.`,
		`wwebstore bench --store "postgres://wwebstore@db.example.com/sessions" --size 1GiB`)
	storeURL := c.storeFlag(fs, "store", EnvStore, "the store")
	size := sizeFlag(200 << 20)
	fs.Var(&size, "size", "size of the generated profile, e.g. 50MiB, 200MB, 1GiB (at least 1MiB)")
	seed := fs.Int64("seed", 1, "seed of the generated profile")
	session := fs.String("session", DefaultBenchSession, "the session name used in the store")
	dir := fs.String("dir", "", "work directory (default: a new temporary directory, removed at the end)")
	keep := fs.Bool("keep", false, "leave the session in the store")
	overwrite := fs.Bool("overwrite", false, "replace the session if it exists in the store")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if err := checkSession(*session); err != nil {
		return err
	}
	if size < profilegen.MinSize {
		return usagef("--size %s is less than the smallest profile, 1MiB", size.String())
	}
	st, rawURL, err := c.openStoreFlag(ctx, *storeURL)
	if err != nil {
		return err
	}
	store := c.storeName(rawURL)
	if !*overwrite {
		exists, err := sessionExists(ctx, st, *session, store)
		if err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("%s has a session %q already: bench would replace it; pass --overwrite, or another --session", store, *session)
		}
	}
	work := *dir
	if work == "" {
		tmp, err := os.MkdirTemp("", "wwebstore-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}

	profile := filepath.Join(work, "backup", "RemoteAuth-bench")
	gen, err := profilegen.Generate(ctx, profile, profilegen.Options{Size: int64(size), Seed: *seed})
	if err != nil {
		return fmt.Errorf("generate the profile in %s: %w", profile, err)
	}
	if !c.json {
		fmt.Fprintf(c.stdout, "profile   %s, %d files; session data %s in %d files\n", mib(gen.Bytes), gen.Files, mib(gen.KeptBytes), gen.KeptFiles)
	}
	want, err := hashTree(profile, remoteauth.DefaultKeptDirs)
	if err != nil {
		return err
	}

	backupSession, p, err := c.profileSession(st, *session, filepath.Dir(profile), "bench", "backup", -1)
	if err != nil {
		return err
	}
	sampler := peakheap.Start()
	b, err := backupSession.Backup(ctx)
	heap := sampler.Stop()
	p.finish()
	if err != nil {
		return fmt.Errorf("back up to session %q of %s: %w", *session, store, err)
	}
	if !*keep {
		defer func() {
			// The session is the benchmark's own: a failure to delete it is reported, not fatal.
			if err := st.Delete(context.WithoutCancel(ctx), *session); err != nil {
				fmt.Fprintf(c.stderr, "wwebstore bench: could not delete session %q from %s: %v; delete it with: wwebstore rm --session %s\n", *session, store, err, *session)
			}
		}()
	}
	out := benchResult{Store: store, Session: *session, ProfileBytes: gen.Bytes, ProfileFiles: gen.Files,
		Backup: phase(b.Duration, b.Bytes, b.ArchiveSize, b.Files, heap)}
	if !c.json {
		printPhase(c.stdout, "backup", out.Backup)
	}

	restored := filepath.Join(work, "restore", "RemoteAuth-bench")
	restoreSession, p, err := c.profileSession(st, *session, filepath.Dir(restored), "bench", "restore", b.ArchiveSize)
	if err != nil {
		return err
	}
	sampler = peakheap.Start()
	r, err := restoreSession.Restore(ctx)
	heap = sampler.Stop()
	p.finish()
	if err == nil && !r.Found {
		err = fmt.Errorf("%w: the session vanished from the store between backup and restore", remoteauth.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("restore session %q of %s: %w", *session, store, err)
	}
	out.Restore = phase(r.Duration, r.Bytes, r.ArchiveSize, r.Files, heap)
	if !c.json {
		printPhase(c.stdout, "restore", out.Restore)
	}

	got, err := hashTree(restored, remoteauth.DefaultKeptDirs)
	if err != nil {
		return err
	}
	if err := compareTrees(want, got); err != nil {
		return fmt.Errorf("the restored profile differs from the one backed up: %w", err)
	}
	out.Verified = len(want)
	if c.json {
		return c.result(out, nil)
	}
	fmt.Fprintf(c.stdout, "verified  %d files identical byte for byte\n", len(want))
	if *keep {
		fmt.Fprintf(c.stdout, "kept      session %s in %s\n", *session, store)
	}
	return nil
}

func printPhase(w io.Writer, name string, p benchPhase) {
	fmt.Fprintf(w, "%-9s %7.2f s  %4.0f MiB/s of session data, %4.0f MiB/s of archive (%s)  peak heap +%s\n",
		name, p.Seconds, p.MiBPerSecond, p.ArchivePerSec, mib(p.ArchiveSize), mib(int64(p.PeakHeapBytes)))
}
