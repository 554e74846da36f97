package remoteauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// URLOpener opens a Store from a URL whose scheme it was registered for.
type URLOpener func(ctx context.Context, u *url.URL) (Store, error)

var registry = struct {
	sync.RWMutex
	openers map[string]URLOpener
}{openers: map[string]URLOpener{}}

// RegisterScheme makes OpenStore open URLs of scheme with open. Store packages call it from init,
// so importing a store package (for its side effect, if need be) is enough to make its scheme
// known. Schemes are case-insensitive. RegisterScheme panics if scheme is already registered or
// open is nil, as database/sql.Register does.
func RegisterScheme(scheme string, open URLOpener) {
	scheme = strings.ToLower(scheme)
	registry.Lock()
	defer registry.Unlock()
	if open == nil {
		panic("remoteauth: RegisterScheme " + scheme + " with a nil opener")
	}
	if _, dup := registry.openers[scheme]; dup {
		panic("remoteauth: RegisterScheme called twice for scheme " + scheme)
	}
	registry.openers[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registry.RLock()
	defer registry.RUnlock()
	s := make([]string, 0, len(registry.openers))
	for k := range registry.openers {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// OpenStore opens the Store that rawURL names, for example "file:///var/lib/sessions" or "mem://".
// The scheme's package must be imported (filestore registers "file", memstore "mem", and so on).
// If the returned Store also implements io.Closer, the caller closes it when done. An error says
// what is wrong with the URL (unparsable, no scheme, no store for its scheme, or what the store's
// opener refused), without repeating the password it may hold.
func OpenStore(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error's message repeats the URL, password included
		}
		return nil, fmt.Errorf("remoteauth: store URL does not parse (%w): write it as scheme://[user:password@]host[:port]/path?query, with special characters in the user and password percent-encoded; known schemes: %s", err, strings.Join(Schemes(), ", "))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("remoteauth: store URL %q has no scheme; known schemes: %s", rawURL, strings.Join(Schemes(), ", "))
	}
	registry.RLock()
	open, ok := registry.openers[strings.ToLower(u.Scheme)]
	registry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("remoteauth: no store registered for scheme %q (import its package); known schemes: %s", u.Scheme, strings.Join(Schemes(), ", "))
	}
	s, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("remoteauth: open %s store: %w", u.Scheme, err)
	}
	return s, nil
}
