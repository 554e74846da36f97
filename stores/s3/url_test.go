package s3store_test

import (
	"bytes"
	"net/url"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

// TestOpenStore opens the store through remoteauth.OpenStore with an s3:// URL, credentials from
// the environment (the standard AWS chain), and round-trips an archive.
func TestOpenStore(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	bucket, prefix := newBucket(t, s, c)
	t.Setenv("AWS_ACCESS_KEY_ID", s.access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.secret)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	q := url.Values{"region": {region}, "endpoint": {s.endpoint}, "path_style": {"true"}, "part_size": {"5242880"}}
	raw := "s3://" + bucket + "/" + prefix + "?" + q.Encode()
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
