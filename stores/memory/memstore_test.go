package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
	"github.com/wwebstore/wwebstore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) remoteauth.Store { return memstore.New() })
}

func TestZeroValue(t *testing.T) {
	ctx := t.Context()
	var st memstore.Store
	if ok, err := st.SessionExists(ctx, "a"); ok || err != nil {
		t.Errorf("SessionExists on the zero Store = %v, %v; want false, nil", ok, err)
	}
	if err := st.Delete(ctx, "a"); err != nil {
		t.Errorf("Delete on the zero Store: %v", err)
	}
	if err := st.Save(ctx, "a", strings.NewReader("archive")); err != nil {
		t.Fatalf("Save on the zero Store: %v", err)
	}
	var buf bytes.Buffer
	if err := st.Extract(ctx, "a", &buf); err != nil || buf.String() != "archive" {
		t.Errorf("Extract after Save on the zero Store: %q, %v; want %q, nil", buf.String(), err, "archive")
	}
}

func TestOpenStore(t *testing.T) {
	ctx := t.Context()
	a, err := remoteauth.OpenStore(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	b, err := remoteauth.OpenStore(ctx, "MEM://")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, "RemoteAuth-a", strings.NewReader("archive")); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.SessionExists(ctx, "RemoteAuth-a"); ok || err != nil {
		t.Errorf("a store opened by a second OpenStore call sees the first one's session: SessionExists = %v, %v; want false, nil", ok, err)
	}

	for _, bad := range []string{"mem://name", "mem:///path", "mem://?x=1", "mem://#f", "mem:opaque", "mem://user@"} {
		if st, err := remoteauth.OpenStore(ctx, bad); err == nil {
			t.Errorf("OpenStore(%q) = %T, nil; want an error", bad, st)
		}
	}
}

func TestErrorsNameStoreAndSession(t *testing.T) {
	ctx := t.Context()
	st := memstore.New()
	err := st.Extract(ctx, "RemoteAuth-bob", new(bytes.Buffer))
	if !errors.Is(err, remoteauth.ErrNotFound) {
		t.Fatalf("Extract of a missing session: %v, want an error wrapping ErrNotFound", err)
	}
	if want := `memstore: extract session "RemoteAuth-bob": ` + remoteauth.ErrNotFound.Error(); err.Error() != want {
		t.Errorf("Extract error = %q, want %q", err, want)
	}
	err = st.Save(ctx, "a/b", strings.NewReader(""))
	if !errors.Is(err, remoteauth.ErrInvalidSession) || !strings.HasPrefix(err.Error(), "memstore: save: ") || !strings.Contains(err.Error(), `"a/b"`) {
		t.Errorf("Save with an invalid name: %q, want a memstore error wrapping ErrInvalidSession that names the session", err)
	}
}

func Example() {
	ctx := context.Background()
	st := memstore.New()

	if err := st.Save(ctx, "RemoteAuth-alice", strings.NewReader("zip bytes")); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := st.Extract(ctx, "RemoteAuth-alice", &buf); err != nil {
		log.Fatal(err)
	}
	fmt.Println(buf.String())

	err := st.Extract(ctx, "RemoteAuth-bob", &buf)
	fmt.Println(errors.Is(err, remoteauth.ErrNotFound))
	// Output:
	// zip bytes
	// true
}

// OpenStore with "mem://" returns a new, empty store, so code written against store URLs can be
// tried without a server.
func Example_openStore() {
	ctx := context.Background()
	st, err := remoteauth.OpenStore(ctx, "mem://")
	if err != nil {
		log.Fatal(err)
	}
	ok, err := st.SessionExists(ctx, "RemoteAuth")
	fmt.Println(ok, err)
	// Output: false <nil>
}

func TestKeep(t *testing.T) {
	ctx := t.Context()
	saved := []string{"v1", "v2", "v3", "v4"}
	for _, keep := range []int{0, 1, 2, 3, 6} {
		st, err := memstore.NewWithOptions(&memstore.Options{Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range saved {
			if err := st.Save(ctx, "a", strings.NewReader(s)); err != nil {
				t.Fatal(err)
			}
		}
		n := keep
		if n == 0 {
			n = remoteauth.DefaultKeep
		}
		var want, got []string
		for i := len(saved) - 1; i >= max(0, len(saved)-n); i-- {
			want = append(want, saved[i])
		}
		list, err := st.Versions(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range list {
			var buf bytes.Buffer
			if err := st.ExtractVersion(ctx, "a", v.ID, &buf); err != nil {
				t.Fatal(err)
			}
			got = append(got, buf.String())
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Keep %d: Versions = %q, want %q", keep, got, want)
		}
	}
	if _, err := memstore.NewWithOptions(&memstore.Options{Keep: -1}); err == nil || !strings.Contains(err.Error(), "Keep") {
		t.Errorf("NewWithOptions with Keep -1: %v, want an error naming Keep", err)
	}
}
