package remoteauth_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

// TestNewSessionReadOnlyDataPath mounts a read-only tmpfs, which stops root too (file modes do
// not), and checks that NewSession refuses a DataPath on it, existing or not.
func TestNewSessionReadOnlyDataPath(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mounting a read-only tmpfs needs CAP_SYS_ADMIN: %v (TestNewSessionBadConfiguration covers /proc and a path under a file)", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	if err := os.WriteFile(filepath.Join(mnt, "x"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("writing to the read-only tmpfs: %v; want EROFS", err)
	}
	for _, dataPath := range []string{mnt, filepath.Join(mnt, "auth")} {
		_, err := remoteauth.NewSession(memstore.New(), &remoteauth.Options{DataPath: dataPath})
		if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "set Options.DataPath to a writable directory") {
			t.Errorf("DataPath %s on a read-only file system: %v; want EROFS and what to do", dataPath, err)
		}
	}
}
