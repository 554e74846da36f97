package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/remoteauth"
	"github.com/wwebstore/wwebstore/stores/file"
)

func runDemo(ctx context.Context, c *cli, args []string) error {
	fs := c.flags(`Generates a synthetic WhatsApp Web profile, backs it up to the embedded file store,
wipes it as a restarted container would, restores it and verifies it byte for byte. It needs no
flag and no server.`, "wwebstore demo --size 1GiB")
	size := sizeFlag(200 << 20)
	fs.Var(&size, "size", "size of the generated profile, e.g. 50MiB, 1GiB (about 43 % of it is session data)")
	seed := fs.Int64("seed", 1, "seed of the generated profile")
	dir := fs.String("dir", "", "work directory (default: a new temporary directory, removed at the end)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	stdout := c.stdout

	work := *dir
	if work == "" {
		tmp, err := os.MkdirTemp("", "wwebstore-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	storeDir := filepath.Join(work, "store")
	store, err := filestore.New(storeDir, nil)
	if err != nil {
		return err
	}
	session, err := remoteauth.NewSession(store, &remoteauth.Options{ClientID: "demo", DataPath: filepath.Join(work, "wwebjs_auth")})
	if err != nil {
		return err
	}
	// On an early return, end the Session without a final backup: it holds the session's lease
	// in the store until Close or Abandon.
	defer session.Abandon(context.WithoutCancel(ctx)) // after Close, this returns ErrClosed
	profile := session.ProfileDir()
	fmt.Fprintf(stdout, "wwebstore demo: session %s, profile %s, file store %s\n\n", session.Name(), profile, storeDir)

	start := time.Now()
	gen, err := profilegen.Generate(ctx, profile, profilegen.Options{Size: int64(size), Seed: *seed})
	if err != nil {
		return fmt.Errorf("generate the profile: %w", err)
	}
	step(stdout, "generate", time.Since(start), "%s profile, %d files; session data %s in %d files", mib(gen.Bytes), gen.Files, mib(gen.KeptBytes), gen.KeptFiles)

	want, err := hashTree(profile, remoteauth.DefaultKeptDirs)
	if err != nil {
		return err
	}
	backup, err := session.Backup(ctx)
	if err != nil {
		return err
	}
	step(stdout, "back up", backup.Duration, "%d files, %s -> archive of %s (%.0f %%), %s", backup.Files, mib(backup.Bytes), mib(backup.ArchiveSize), 100*float64(backup.ArchiveSize)/float64(backup.Bytes), rate(backup.Bytes, backup.Duration))

	again, err := session.Backup(ctx)
	if err != nil {
		return err
	}
	if !again.Unchanged {
		return errors.New("the second backup of an unchanged profile uploaded it again")
	}
	step(stdout, "back up", again.Duration, "again: profile unchanged, nothing sent")

	start = time.Now()
	if err := os.RemoveAll(profile); err != nil {
		return err
	}
	step(stdout, "wipe", time.Since(start), "removed the profile, as a restarted container would")

	restore, err := session.Restore(ctx)
	if err != nil {
		return err
	}
	if !restore.Found {
		return errors.New("the store has no archive of the session")
	}
	step(stdout, "restore", restore.Duration, "archive of %s -> %d files, %s, %s", mib(restore.ArchiveSize), restore.Files, mib(restore.Bytes), rate(restore.Bytes, restore.Duration))

	start = time.Now()
	got, err := hashTree(profile, remoteauth.DefaultKeptDirs)
	if err != nil {
		return err
	}
	if err := compareTrees(want, got); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	step(stdout, "verify", time.Since(start), "%d files identical byte for byte, modes included", len(want))

	start = time.Now()
	if err := session.Close(ctx); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	step(stdout, "close", time.Since(start), "final backup (profile unchanged, nothing sent), lease released")
	fmt.Fprintln(stdout, "\nThe session survived the wipe.")
	return nil
}

func step(w io.Writer, name string, d time.Duration, format string, args ...any) {
	fmt.Fprintf(w, "%-9s %8s  %s\n", name, d.Round(time.Millisecond), fmt.Sprintf(format, args...))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB/s", float64(n)/(1<<20)/d.Seconds())
}

// fileSum is what verification compares of one file.
type fileSum struct {
	mode fs.FileMode
	sum  [sha256.Size]byte
}

// hashTree hashes every regular file under the kept directories of profile.
func hashTree(profile string, kept []string) (map[string]fileSum, error) {
	sums := map[string]fileSum{}
	for _, k := range kept {
		root := filepath.Join(profile, filepath.FromSlash(k))
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			rel, _ := filepath.Rel(profile, p)
			s := fileSum{mode: info.Mode()}
			h.Sum(s.sum[:0])
			sums[filepath.ToSlash(rel)] = s
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return sums, nil
}

func compareTrees(want, got map[string]fileSum) error {
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			return fmt.Errorf("%s is missing", name)
		case g.sum != w.sum:
			return fmt.Errorf("%s differs", name)
		case g.mode != w.mode:
			return fmt.Errorf("%s has mode %v, want %v", name, g.mode, w.mode)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			return fmt.Errorf("%s was not in the profile", name)
		}
	}
	return nil
}

// sizeFlag is a byte count written with an optional binary unit: 512KiB, 200MiB, 1GiB (KB, MB
// and GB are read as the same binary units).
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s)>>20, 10) + "MiB" }

func (s *sizeFlag) Set(v string) error {
	units := []struct {
		suffix string
		shift  uint
	}{{"GiB", 30}, {"GB", 30}, {"G", 30}, {"MiB", 20}, {"MB", 20}, {"M", 20}, {"KiB", 10}, {"KB", 10}, {"K", 10}, {"B", 0}}
	num, shift := v, uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("%q is not a size such as 200MiB or 1GiB", v)
	}
	*s = sizeFlag(n * float64(int64(1)<<shift))
	return nil
}
