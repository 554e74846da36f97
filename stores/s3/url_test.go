package s3store_test

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"testing"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

// TestOpenStore opens the store through remoteauth.OpenStore with the s3:// URL of a testservers
// namespace and a part size, credentials from the environment (the standard AWS chain, without
// the developer's shared files), and round-trips an archive.
func TestOpenStore(t *testing.T) {
	srv := testservers.S3(t)
	srv.Setenv(t)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("part_size", "5242880")
	u.RawQuery = q.Encode()
	raw := u.String()
	st, err := remoteauth.OpenStore(t.Context(), raw)
	if err != nil {
		t.Fatalf("OpenStore(%q): %v", raw, err)
	}
	if _, ok := st.(*s3store.Store); !ok {
		t.Fatalf("OpenStore returned a %T", st)
	}
	data := pattern(5, 6<<20)
	save(t, st, "RemoteAuth-url", data)
	if !bytes.Equal(extract(t, st, "RemoteAuth-url"), data) {
		t.Error("round trip through a store opened by URL failed")
	}
	if err := st.Delete(t.Context(), "RemoteAuth-url"); err != nil {
		t.Fatal(err)
	}
}

// TestOpenStoreKeep: the URL parameter keep=N sets how many archives a session keeps.
func TestOpenStoreKeep(t *testing.T) {
	srv := testservers.S3(t)
	srv.Setenv(t)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	for _, keep := range []int{1, 3} {
		u, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("keep", strconv.Itoa(keep))
		u.RawQuery = q.Encode()
		st, err := remoteauth.OpenStore(t.Context(), u.String())
		if err != nil {
			t.Fatalf("OpenStore(%q): %v", u, err)
		}
		session := fmt.Sprintf("RemoteAuth-keep%d", keep)
		for i := range keep + 2 {
			save(t, st, session, pattern(uint64(800+i), 1000))
		}
		list, err := st.(remoteauth.History).Versions(t.Context(), session)
		if err != nil || len(list) != keep {
			t.Errorf("keep=%d: Versions = %v, %v; want %d archives", keep, list, err, keep)
		}
		if err := st.Delete(t.Context(), session); err != nil {
			t.Fatal(err)
		}
	}
}
