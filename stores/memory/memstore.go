// Package memstore is a [remoteauth.Store] that keeps archives in memory, for tests and examples.
// Archives live as long as the Store value: nothing is written anywhere, and everything is lost
// when the process exits.
//
// Unlike the other stores, Save holds the whole archive in memory (as the Store contract allows
// for this package). It reads r into a new buffer and makes that buffer the session's archive only
// once r has been read to its end, so a failed or cancelled Save leaves the previous archive as
// it was.
//
// # History
//
// A Store implements [remoteauth.History]: it keeps the last [Options.Keep] archives of each
// session ([remoteauth.DefaultKeep], 2, by default: the current one and the one before), each
// held in memory whole. IDs are decimal numbers from a counter of the Store ("1", "2", …), so
// they are unique across its sessions and never reused; Saved is the time of the Save by this
// process's clock.
//
// # Leases
//
// A Store implements [remoteauth.Leaser] within its process: it keeps, per session ever leased,
// the newest token, its owner, its expiry by this process's clock and whether it was released,
// and never forgets them (Delete included), so that tokens never go back. Every step of a lease,
// and the token check of a fenced Save or Delete together with the switch of the archive,
// happens under the Store's mutex, so a superseded lease can never write.
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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
	keep     int // archives kept per session, the current one included; 0 means remoteauth.DefaultKeep
	mu       sync.RWMutex
	archives map[string]archive // session name → archive
	// older holds the previous archives of each session, newest first: at most keep-1.
	older map[string][]archive
	seq   uint64 // the ID of the last archive saved
	// leases holds the lease state of each session ever leased; never removed (see lease.go).
	leases map[string]*leaseState
}

// archive is one session's archive.
type archive struct {
	data  []byte // never modified once stored
	saved time.Time
	id    string
}

var (
	_ remoteauth.Store   = (*Store)(nil)
	_ remoteauth.Lister  = (*Store)(nil)
	_ remoteauth.History = (*Store)(nil)
	_ remoteauth.Leaser  = (*Store)(nil)
)

// New returns a new, empty Store with the default options.
func New() *Store {
	return new(Store)
}

// Options configures a Store made by NewWithOptions. The zero value, like a nil *Options, means
// the defaults.
type Options struct {
	// Keep is how many archives of each session the Store keeps, the current one included (see
	// remoteauth.History). Zero means remoteauth.DefaultKeep (2); 1 keeps no history; any
	// positive number is allowed, each kept archive taking its size in memory.
	Keep int
}

// NewWithOptions returns a new, empty Store with opts. A nil opts means the defaults; a negative
// Keep is an error.
func NewWithOptions(opts *Options) (*Store, error) {
	s := new(Store)
	if opts != nil {
		if opts.Keep < 0 {
			return nil, fmt.Errorf("memstore: Options.Keep is %d; want 1 or more (0 means the default, %d)", opts.Keep, remoteauth.DefaultKeep)
		}
		s.keep = opts.Keep
	}
	return s, nil
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

// Save reads r to its end and makes what it read session's archive, replacing the previous one,
// which becomes the newest of the kept archives (the oldest beyond Options.Keep is dropped).
// If r fails or ctx ends first, Save returns an error wrapping r's error or ctx.Err(), and the
// previous archive (or its absence) and the kept ones stay as they were.
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
	s.put(session, buf.Bytes())
	return nil
}

// put makes data session's archive, keeping the previous one as History says. The caller holds
// s.mu for writing.
func (s *Store) put(session string, data []byte) {
	if s.archives == nil {
		s.archives = make(map[string]archive)
	}
	if prev, ok := s.archives[session]; ok && s.keepN() > 1 {
		if s.older == nil {
			s.older = make(map[string][]archive)
		}
		older := append([]archive{prev}, s.older[session]...)
		s.older[session] = older[:min(len(older), s.keepN()-1)]
	} else {
		delete(s.older, session) // nothing to keep
	}
	s.seq++
	s.archives[session] = archive{data: data, saved: time.Now(), id: strconv.FormatUint(s.seq, 10)}
}

// Extract writes session's archive to w. For a session without an archive it returns an error
// wrapping remoteauth.ErrNotFound and writes nothing. It checks ctx between writes.
func (s *Store) Extract(ctx context.Context, session string, w io.Writer) error {
	if err := begin(ctx, "extract", session); err != nil {
		return err
	}
	s.mu.RLock()
	a, ok := s.archives[session]
	s.mu.RUnlock()
	if !ok {
		return opError("extract", session, remoteauth.ErrNotFound)
	}
	// a.data is never modified once stored, so it is written without holding the lock.
	if _, err := io.Copy(w, remoteauth.ContextReader(ctx, bytes.NewReader(a.data))); err != nil {
		return opError("extract", session, err)
	}
	return nil
}

// Delete removes session's archive and the archives kept before it. Deleting a session without
// an archive returns nil.
func (s *Store) Delete(ctx context.Context, session string) error {
	if err := begin(ctx, "delete", session); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.archives, session)
	delete(s.older, session)
	return nil
}

// keepN returns how many archives of a session the store keeps.
func (s *Store) keepN() int {
	if s.keep == 0 {
		return remoteauth.DefaultKeep
	}
	return s.keep
}

// Versions lists the kept archives of session, newest first: the current one, then at most
// Options.Keep-1 previous ones. It implements remoteauth.History.
func (s *Store) Versions(ctx context.Context, session string) ([]remoteauth.ArchiveVersion, error) {
	if err := begin(ctx, "list versions of", session); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	cur, ok := s.archives[session]
	if !ok {
		return nil, nil
	}
	list := make([]remoteauth.ArchiveVersion, 0, 1+len(s.older[session]))
	for _, a := range append([]archive{cur}, s.older[session]...) {
		list = append(list, remoteauth.ArchiveVersion{ID: a.id, Size: int64(len(a.data)), Saved: a.saved})
	}
	return list, nil
}

// ExtractVersion writes the kept archive of session with that ID to w. When session keeps no
// archive with that ID it returns an error wrapping remoteauth.ErrNotFound and writes nothing.
// It checks ctx between writes. It implements remoteauth.History.
func (s *Store) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	if err := begin(ctx, "extract", session); err != nil {
		return err
	}
	s.mu.RLock()
	var data []byte
	found := false
	if cur, ok := s.archives[session]; ok {
		for _, a := range append([]archive{cur}, s.older[session]...) {
			if a.id == id {
				data, found = a.data, true
				break
			}
		}
	}
	s.mu.RUnlock()
	if !found {
		return opError("extract", session, fmt.Errorf("archive %q: %w", id, remoteauth.ErrNotFound))
	}
	// data is never modified once stored, so it is written without holding the lock.
	if _, err := io.Copy(w, remoteauth.ContextReader(ctx, bytes.NewReader(data))); err != nil {
		return opError("extract", session, fmt.Errorf("archive %q: %w", id, err))
	}
	return nil
}

// List returns the sessions that have an archive, sorted by name, with their sizes and the
// times of their Saves (this process's clock). It implements remoteauth.Lister.
func (s *Store) List(ctx context.Context) ([]remoteauth.SessionInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: list sessions: %w", err)
	}
	s.mu.RLock()
	list := make([]remoteauth.SessionInfo, 0, len(s.archives))
	for name, a := range s.archives {
		list = append(list, remoteauth.SessionInfo{Name: name, Size: int64(len(a.data)), Saved: a.saved})
	}
	s.mu.RUnlock()
	slices.SortFunc(list, func(a, b remoteauth.SessionInfo) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
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
