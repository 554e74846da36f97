package reliability

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/wwebstore/wwebstore/internal/testenv"
	"github.com/wwebstore/wwebstore/internal/testservers"
)

// mount runs mount(8) with args, through sudo -n when the test does not run as root (a GitHub
// Actions runner has passwordless sudo), or calls mount(2) as root. flags and data are
// mount(2)'s; args are mount(8)'s equivalent.
func mount(target string, flags uintptr, data string, args ...string) error {
	if os.Geteuid() == 0 {
		return syscall.Mount("tmpfs", target, "tmpfs", flags, data)
	}
	out, err := exec.Command("sudo", append([]string{"-n", "mount"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sudo -n mount %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// mountTmpfs mounts a tmpfs of size bytes, owned by the test's user, on a new directory,
// unmounted when the test ends. It needs root (CAP_SYS_ADMIN) or passwordless sudo; without
// them, the test is unavailable.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("size=%d,mode=0700,uid=%d,gid=%d", size, os.Getuid(), os.Getgid())
	if err := mount(dir, 0, opts, "-t", "tmpfs", "-o", opts, "tmpfs", dir); err != nil {
		testenv.Unavailable(t, "cannot mount a tmpfs on %s: %v; run the test as root, or where sudo -n works", dir, err)
	}
	t.Cleanup(func() {
		var err error
		if os.Geteuid() == 0 {
			err = syscall.Unmount(dir, 0)
		} else if out, cerr := exec.Command("sudo", "-n", "umount", dir).CombinedOutput(); cerr != nil {
			err = fmt.Errorf("%w: %s", cerr, out)
		}
		if err != nil {
			t.Errorf("unmounting the tmpfs on %s: %v (unmount it with umount %s)", dir, err, dir)
		}
	})
	return dir
}

// resizeTmpfs resizes the tmpfs on dir so that it has room for free more bytes than it holds.
func resizeTmpfs(t *testing.T, dir string, free int64) {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	size := fmt.Sprintf("size=%d", int64(fs.Blocks-fs.Bfree)*fs.Bsize+free)
	if err := mount(dir, syscall.MS_REMOUNT, size, "-o", "remount,"+size, dir); err != nil {
		t.Fatalf("resizing the tmpfs on %s (%s): %v", dir, size, err)
	}
}

// TestDiskFullDuringRestore restores, for every store, an archive into a DataPath that cannot
// hold it: a tmpfs that holds an older profile, with room left for half the archive ("fetch":
// the download into the temporary file fails), or for the archive and half its content
// ("extract": the extraction fails). Restore fails with an error wrapping ENOSPC, the old
// profile is byte for byte as it was, and nothing else is left in DataPath. Once there is room,
// the same Session restores the archive.
func TestDiskFullDuringRestore(t *testing.T) {
	const (
		oldSize = 2 << 20  // the local profile: 2 MiB in all
		newSize = 16 << 20 // the archive: 6.9 MiB of content in 4.8 MiB
	)
	ss := newStates(t, newSize)
	olds := newStates(t, oldSize)
	forEachStore(t, true, func(t *testing.T, srv testservers.Server) {
		st := openStore(t, srv, srv.URL)
		src := newSession(t, st, "full", t.TempDir())
		setProfile(t, ss, src, 1)
		saved, err := src.Backup(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			free int64 // room left beside the old profile
		}{
			{"fetch", saved.ArchiveSize / 2},
			{"extract", saved.ArchiveSize + saved.Bytes/2},
		} {
			t.Run(tc.name, func(t *testing.T) {
				data := mountTmpfs(t, 64<<20)
				s := newSession(t, st, "full", data)
				setProfile(t, olds, s, 100)
				resizeTmpfs(t, data, tc.free)
				before, err := hashTree(s.ProfileDir())
				if err != nil {
					t.Fatal(err)
				}
				_, err = s.Restore(t.Context())
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("Restore into a full disk: %v; want an error wrapping ENOSPC", err)
				}
				t.Logf("Restore with %d bytes free for a %d-byte archive of %d bytes: %v", tc.free, saved.ArchiveSize, saved.Bytes, err)
				after, err := hashTree(s.ProfileDir())
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(before, after) {
					t.Errorf("the failed Restore changed the old profile: %s", before.diff(after))
				}
				if got, want := listDir(t, data), []string{filepath.Base(s.ProfileDir())}; !slices.Equal(got, want) {
					t.Errorf("the failed Restore left %q in DataPath; want only %q", got, want)
				}

				resizeTmpfs(t, data, 2*(saved.ArchiveSize+saved.Bytes))
				res, err := s.Restore(t.Context())
				if err != nil || !res.Found {
					t.Fatalf("Restore once there is room: found %t, %v", res.Found, err)
				}
				got, err := hashTree(s.ProfileDir())
				if err != nil {
					t.Fatal(err)
				}
				if want := ss.tree(t, 1); !maps.Equal(want, got) {
					t.Errorf("Restore once there is room: %s", want.diff(got))
				}
			})
		}
	})
}
