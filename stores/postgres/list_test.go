package postgresstore_test

import (
	"slices"
	"strings"
	"testing"
)

// TestListSkipsForeignRows checks that List reports the sessions of its own tables only, and
// skips rows whose names are not valid session names (written by hand, not by a Save). (The
// conformance suite checks List itself, directly and through PgBouncer.)
func TestListSkipsForeignRows(t *testing.T) {
	pool := newPool(t, serverURL(t))
	st := newStore(t, pool, pool, nil)
	other := newStore(t, pool, pool, nil)
	for _, name := range []string{"RemoteAuth-b", "RemoteAuth-a"} {
		if err := st.Save(t.Context(), name, strings.NewReader("archive of "+name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Save(t.Context(), "RemoteAuth-other", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	sessions, _, _ := st.TableNames()
	if _, err := pool.Exec(t.Context(), `INSERT INTO `+sessions+` (session, size, chunks, chunk_size, saved_at, gen) VALUES ('not valid', 0, 0, 1, now(), 1)`); err != nil {
		t.Fatal(err)
	}
	list, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, info := range list {
		names = append(names, info.Name)
		if want := int64(len("archive of " + info.Name)); info.Size != want {
			t.Errorf("session %q has size %d, want %d", info.Name, info.Size, want)
		}
	}
	if want := []string{"RemoteAuth-a", "RemoteAuth-b"}; !slices.Equal(names, want) {
		t.Errorf("List = %q, want %q", names, want)
	}
}
