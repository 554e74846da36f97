package remoteauth

import (
	"context"
	"io"
	"time"
)

// DefaultKeep is how many archives of a session a History store keeps unless configured
// otherwise: the current one and the one before it.
const DefaultKeep = 2

// ArchiveVersion describes one archive that a History store keeps of a session.
type ArchiveVersion struct {
	// ID names the archive within its session for as long as the store keeps it: it does not
	// change when newer archives are saved. IDs are opaque strings chosen by the store; two
	// archives of one session never share an ID, and an ID of one session means nothing in
	// another.
	ID string
	// Size is the archive's size in bytes.
	Size int64
	// Saved is when the archive was saved, by the clock of the store's server (or host, for
	// filestore); the zero Time when the store does not record it.
	Saved time.Time
}

// History is the optional capability of a Store that keeps the previous archives of each
// session, so that a restore can fall back to an older archive when the newest one is damaged
// (see Session.Restore). Callers find it by type assertion:
//
//	if h, ok := store.(remoteauth.History); ok { versions, err := h.Versions(ctx, session) }
//
// The contract, which package storetest checks for every store that implements History:
//
//   - A store keeps the last Keep archives of each session, where Keep is a store option
//     (DefaultKeep, 2, unless configured: the current archive and the one before it). Keep 1
//     keeps no history: Versions then lists the current archive alone. Each successful Save adds
//     the archive it saved as the newest and evicts the oldest beyond Keep.
//   - Versions lists the kept archives of session, newest first. The first is the archive that
//     Extract returns. A session without an archive has none: (nil, nil). Names are checked as
//     for the Store methods (ErrInvalidSession).
//   - ExtractVersion writes the kept archive with that ID to w, byte for byte as Save read it.
//     When the session has no archive with that ID (never had, evicted, deleted, or an ID that
//     this store never makes) it returns an error wrapping ErrNotFound, naming the session, and
//     writes nothing.
//   - A failed Save (r fails, ctx ends, the backend fails) neither adds an archive nor evicts
//     one: Versions lists the same archives as before, each readable byte for byte.
//   - Delete removes every kept archive of the session, not only the newest; a session saved
//     again after Delete starts a new history.
//   - Sessions are isolated as in Store: the archives of "a" are never listed or extracted
//     through "a-b" or "A".
//   - Safe for concurrent use. A Versions that races a Save lists the archives as they were
//     before or after it; an ExtractVersion that races the eviction of its archive writes it
//     whole or returns ErrNotFound. Concurrent Saves of one session in one process are all kept
//     in the order they completed; between processes, a store may say otherwise in its
//     documentation.
//   - Errors wrap the backend's error with %w and name the store and the session; a cancelled
//     ctx gives an error wrapping ctx.Err().
//
// A store that wraps another returns an error wrapping errors.ErrUnsupported from both methods
// when the store it wraps keeps no history: callers treat it as a store that does not implement
// History, and Session.Restore then reads the newest archive with Store.Extract (see "Optional
// capabilities and wrapper stores" in the package documentation).
type History interface {
	Versions(ctx context.Context, session string) ([]ArchiveVersion, error)
	ExtractVersion(ctx context.Context, session, id string, w io.Writer) error
}
