package filestore

import (
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// fileName must give every session its own file, even where file names are compared without
// regard to case, and never a name longer than file systems allow.
func TestFileNameCaseInsensitiveUnique(t *testing.T) {
	var names []string
	// Every name of up to 4 characters from a few letters in both cases and a separator.
	var gen func(prefix string)
	gen = func(prefix string) {
		if prefix != "" {
			names = append(names, prefix)
		}
		if len(prefix) == 4 {
			return
		}
		for _, c := range "aAbB-" {
			gen(prefix + string(c))
		}
	}
	gen("")
	// Names of the longest length with every count of upper-case letters, upper-case first or
	// last, or alternating with lower-case.
	n := remoteauth.MaxSessionNameLen
	for upper := 0; upper <= n; upper++ {
		names = append(names,
			strings.Repeat("Q", upper)+strings.Repeat("q", n-upper),
			strings.Repeat("q", n-upper)+strings.Repeat("Q", upper),
		)
	}
	names = append(names, strings.Repeat("Qq", n/2), strings.Repeat("qQ", n/2))

	seen := make(map[string]string, len(names))
	for _, name := range names {
		if err := remoteauth.ValidateSessionName(name); err != nil {
			t.Fatal(err)
		}
		file := fileName(name)
		if len(file) > maxFileName {
			t.Errorf("fileName(%q) is %d bytes long, more than %d", name, len(file), maxFileName)
		}
		if strings.HasPrefix(file, ".") {
			t.Errorf("fileName(%q) = %q begins with '.', like temporary files", name, file)
		}
		folded := strings.ToLower(file)
		if other, dup := seen[folded]; dup && other != name {
			t.Errorf("sessions %q and %q both have file %q when case is ignored", other, name, folded)
		}
		seen[folded] = name
	}
}
