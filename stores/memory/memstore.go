// Package memstore is a [remoteauth.Store] that keeps archives in memory, for tests and examples.
// Archives live as long as the Store value: nothing is written anywhere, and everything is lost
// when the process exits.
//
// Unlike the other stores, Save holds the whole archive in memory (as the Store contract allows
// for this package). It reads r into a new buffer and makes that buffer the session's archive only
// once r has been read to its end, so a failed or cancelled Save leaves the previous archive as
// it was.
//
// # URLs
//
// Importing memstore registers the "mem" scheme with [remoteauth.OpenStore]:
//
//	st, err := remoteauth.OpenStore(ctx, "mem://")
//
// Each call returns a new, empty, independent Store: two OpenStore calls with "mem://" do not see
// each other's sessions. The URL holds nothing but the scheme; a host, path, query or fragment is
// an error, which leaves room for named stores later without changing what "mem://" means.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Scheme is the URL scheme that memstore registers with remoteauth.RegisterScheme.
const Scheme = "mem"

func init() {
	remoteauth.RegisterScheme(Scheme, openURL)
}

// Store is a remoteauth.Store that keeps archives in memory. The zero value is an empty store
// ready to use. A Store is safe for concurrent use; it must not be copied after first use.
type Store struct {
	mu       sync.RWMutex
	archives map[string][]byte // session name → archive; a stored slice is never modified
}

var _ remoteauth.Store = (*Store)(nil)

// New returns a new, empty Store.
func New() *Store {
	return new(Store)
}

// SessionExists reports whether session has an archive.
func (s *Store) SessionExists(ctx context.Context, session string) (bool, error) {
	if err := begin(ctx, "check", session); err != nil {
		return false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.archives[session]
	return ok, nil
}

// Save reads r to its end and makes what it read session's archive, replacing the previous one.
// If r fails or ctx ends first, Save returns an error wrapping r's error or ctx.Err(), and the
// previous archive (or its absence) stays as it was.
func (s *Store) Save(ctx context.Context, session string, r io.Reader) error {
	if err := begin(ctx, "save", session); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(remoteauth.ContextReader(ctx, r)); err != nil {
		return opError("save", session, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.archives == nil {
		s.archives = make(map[string][]byte)
	}
	s.archives[session] = buf.Bytes()
	return nil
}

// Extract writes session's archive to w. For a session without an archive it returns an error
// wrapping remoteauth.ErrNotFound and writes nothing. It checks ctx between writes.
func (s *Store) Extract(ctx context.Context, session string, w io.Writer) error {
	if err := begin(ctx, "extract", session); err != nil {
		return err
	}
	s.mu.RLock()
	archive, ok := s.archives[session]
	s.mu.RUnlock()
	if !ok {
		return opError("extract", session, remoteauth.ErrNotFound)
	}
	// archive is never modified once stored, so it is written without holding the lock.
	if _, err := io.Copy(w, remoteauth.ContextReader(ctx, bytes.NewReader(archive))); err != nil {
		return opError("extract", session, err)
	}
	return nil
}

// Delete removes session's archive. Deleting a session without an archive returns nil.
func (s *Store) Delete(ctx context.Context, session string) error {
	if err := begin(ctx, "delete", session); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.archives, session)
	return nil
}

// begin checks the arguments common to every method: the session name, then ctx.
func begin(ctx context.Context, op, session string) error {
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return fmt.Errorf("memstore: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return opError(op, session, err)
	}
	return nil
}

func opError(op, session string, err error) error {
	return fmt.Errorf("memstore: %s session %q: %w", op, session, err)
}

// openURL opens "mem://": a new, empty Store.
func openURL(_ context.Context, u *url.URL) (remoteauth.Store, error) {
	if u.Opaque != "" || u.User != nil || u.Host != "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("memstore: URL %q: want %q (each OpenStore call returns a new, empty store; names and options are not supported)", u.Redacted(), "mem://")
	}
	return New(), nil
}
