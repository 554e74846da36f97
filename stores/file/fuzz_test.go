package filestore

import (
	"net/url"
	"testing"
)

// FuzzDirFromURL checks how a "file" URL becomes a directory: never a panic, never an empty
// directory, and an error for what the package documentation refuses (a fragment, an empty
// query, a host other than "", "." and "localhost"). The query's parameters are the opener's. Seeds: testdata/fuzz/FuzzDirFromURL.
func FuzzDirFromURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Skip()
		}
		dir, err := dirFromURL(u)
		if err != nil {
			if dir != "" {
				t.Fatalf("dirFromURL(%q) = %q and an error %v", raw, dir, err)
			}
			return
		}
		switch {
		case dir == "":
			t.Fatalf("dirFromURL(%q) returned no directory and no error", raw)
		case u.ForceQuery || u.Fragment != "":
			t.Fatalf("dirFromURL(%q) = %q: a fragment or an empty query was accepted", raw, dir)
		case u.Opaque == "" && u.Host != "" && u.Host != "." && u.Host != "localhost":
			t.Fatalf("dirFromURL(%q) = %q: host %q was accepted", raw, dir, u.Host)
		}
	})
}
