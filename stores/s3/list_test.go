package s3store_test

import (
	"bytes"
	"path"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

// TestListPrefixes checks that List reports the sessions directly under its own prefix only: not
// those of a deeper prefix or of a prefix that starts like its own, nor objects that are no
// archive of a valid session name. (The conformance suite checks List itself.)
func TestListPrefixes(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	bucket, base := newBucket(t, s, c)
	stores := []struct {
		prefix   string
		sessions []string
	}{
		{"p", []string{"a", "a-", "b"}},
		{"p/q", []string{"c"}},
		{"pq", []string{"d"}},
	}
	opened := make([]*s3store.Store, len(stores))
	for i, st := range stores {
		store, err := s3store.New(t.Context(), c, bucket, &s3store.Options{Prefix: path.Join(base, st.prefix)})
		if err != nil {
			t.Fatal(err)
		}
		opened[i] = store
		for _, name := range st.sessions {
			save(t, store, name, []byte("archive of "+name))
		}
	}
	for _, key := range []string{"p/notes.txt", "p/a b.zip", "p/.zip"} {
		key = path.Join(base, key)
		if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader([]byte("x"))}); err != nil {
			t.Fatal(err)
		}
	}
	for i, st := range stores {
		list, err := opened[i].List(t.Context())
		if err != nil {
			t.Fatalf("prefix %q: List: %v", st.prefix, err)
		}
		var names []string
		for _, info := range list {
			names = append(names, info.Name)
			if want := int64(len("archive of " + info.Name)); info.Size != want || info.Saved.IsZero() {
				t.Errorf("prefix %q: session %q has size %d and time %v, want %d and a time", st.prefix, info.Name, info.Size, info.Saved, want)
			}
		}
		if !slices.Equal(names, st.sessions) {
			t.Errorf("prefix %q: List = %q, want %q", st.prefix, names, st.sessions)
		}
	}
}
