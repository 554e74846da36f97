package remoteauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/filetree"
	"github.com/wwebstore/wwebstore/remoteauth"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

// lacking is a wrapper store, as the package documentation describes them, around a store whose
// History and Leaser it does not pass on: its capability methods say errors.ErrUnsupported.
type lacking struct{ remoteauth.Store }

var errLacking = fmt.Errorf("test wrapper: the inner store lacks this: %w", errors.ErrUnsupported)

func (lacking) Versions(context.Context, string) ([]remoteauth.ArchiveVersion, error) {
	return nil, errLacking
}

func (lacking) ExtractVersion(context.Context, string, string, io.Writer) error { return errLacking }

func (lacking) AcquireLease(context.Context, string, string, time.Duration) (remoteauth.Lease, error) {
	return nil, errLacking
}

// TestCapabilityUnsupported checks that a Session treats a History and a Leaser that say
// errors.ErrUnsupported as a store without them: it backs up with Store.Save and no lease, and
// restores with Store.Extract.
func TestCapabilityUnsupported(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New()
	st := lacking{mem}
	src, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	filetree.Write(t, src.ProfileDir(), localProfile)
	if _, err := src.Backup(ctx); err != nil {
		t.Fatalf("Backup over a Leaser that says ErrUnsupported: %v", err)
	}
	// No lease was taken behind the wrapper's back: another owner gets one at once.
	l, err := mem.AcquireLease(ctx, src.Name(), "other", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease while the Session runs = %v; want a grant, since the Session leases nothing", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(ctx); err != nil {
		t.Fatal(err)
	}

	dst, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "a", DataPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := dst.Restore(ctx)
	if err != nil || !res.Found || res.Version != "" || res.FellBack {
		t.Fatalf("Restore over a History that says ErrUnsupported = %+v, %v; want the archive, with no version", res, err)
	}
	if got, want := readTree(t, dst.ProfileDir()), readTree(t, src.ProfileDir()); !maps.Equal(got, want) {
		t.Errorf("restored profile = %v, want %v", got, want)
	}
	if err := dst.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
