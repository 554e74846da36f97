package remoteauth_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/wwebstore/wwebstore/remoteauth"
	_ "github.com/wwebstore/wwebstore/stores/file"
	_ "github.com/wwebstore/wwebstore/stores/memory"
)

func TestOpenStore(t *testing.T) {
	if got := remoteauth.Schemes(); !slices.Contains(got, "file") || !slices.Contains(got, "mem") {
		t.Fatalf("Schemes() = %v, want file and mem registered by their packages", got)
	}
	for _, u := range []string{"mem://", "MEM://", "file://" + t.TempDir()} {
		s, err := remoteauth.OpenStore(t.Context(), u)
		if err != nil || s == nil {
			t.Errorf("OpenStore(%q) = %v, %v", u, s, err)
		}
	}
	for u, want := range map[string]string{
		"nosuch://x":  `no store registered for scheme "nosuch"`,
		"/just/a/dir": "has no scheme",
		"::":          "store URL",
	} {
		if _, err := remoteauth.OpenStore(t.Context(), u); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("OpenStore(%q) = %v, want an error saying %q", u, err, want)
		}
	}
}

func TestRegisterSchemeTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	remoteauth.RegisterScheme("mem", func(context.Context, *url.URL) (remoteauth.Store, error) { return nil, nil })
}
