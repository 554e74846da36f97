package redisstore_test

import (
	"slices"
	"strings"
	"testing"

	redisstore "github.com/wwebstore/wwebstore/stores/redis"
)

// TestListKeyPrefixes checks that List reports the sessions of its own key prefix only, even when
// the prefix holds SCAN's pattern characters and other prefixes start with it or with a part of
// it. (The conformance suite checks List itself, on a single node, a cluster and a Sentinel.)
func TestListKeyPrefixes(t *testing.T) {
	rdb := newClient(t, serverOptions(t))
	base := testPrefix(t)
	stores := []struct {
		prefix   string
		sessions []string
	}{
		{base + `x*[y]?\:`, []string{"a", "b"}},
		{base + "x", []string{"c"}},
		{base + `x*[y]?\:q:`, []string{"d"}},
		{base + "xy:", []string{"e"}},
	}
	opened := make([]*redisstore.Store, len(stores))
	for i, s := range stores {
		st, err := redisstore.New(t.Context(), rdb, &redisstore.Options{KeyPrefix: s.prefix})
		if err != nil {
			t.Fatal(err)
		}
		opened[i] = st
		for _, name := range s.sessions {
			if err := st.Save(t.Context(), name, strings.NewReader("archive of "+name)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Delete(t.Context(), name) })
		}
	}
	for i, s := range stores {
		list, err := opened[i].List(t.Context())
		if err != nil {
			t.Fatalf("prefix %q: List: %v", s.prefix, err)
		}
		var names []string
		for _, info := range list {
			names = append(names, info.Name)
			if want := int64(len("archive of " + info.Name)); info.Size != want {
				t.Errorf("prefix %q: session %q has size %d, want %d", s.prefix, info.Name, info.Size, want)
			}
		}
		if !slices.Equal(names, s.sessions) {
			t.Errorf("prefix %q: List = %q, want %q", s.prefix, names, s.sessions)
		}
	}
}
