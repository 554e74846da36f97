package remoteauth

import (
	"context"
	"time"
)

// SessionInfo describes the archive of one session, as a Lister reports it.
type SessionInfo struct {
	Name string // the session name
	Size int64  // the archive's size in bytes
	// Saved is when the archive was saved, by the clock of the store's server (or host, for
	// filestore); the zero Time when the store does not record it.
	Saved time.Time
}

// Lister is the optional capability of a Store that can enumerate its sessions. Callers find it
// by type assertion:
//
//	if l, ok := store.(remoteauth.Lister); ok { sessions, err := l.List(ctx) }
//
// List returns the sessions that have an archive, each once, sorted by name (byte order). It
// lists what SessionExists would report: a session whose first Save is still in progress, or
// failed, is not listed, and a Save in progress does not hide the archive it replaces. A
// session saved or deleted while List runs may or may not be listed. Names that the store
// holds but that are not valid session names (ValidateSessionName) are not listed. The whole
// list is held in memory. Errors wrap the backend's error with %w and name the store; a
// cancelled ctx gives an error wrapping ctx.Err(). package storetest checks these promises for
// every store that implements Lister.
//
// A store that wraps another returns an error wrapping errors.ErrUnsupported from List when the
// store it wraps cannot list: callers treat it as a store that does not implement Lister (see
// "Optional capabilities and wrapper stores" in the package documentation). SessionInfo.Size is
// then the size of the archive as the wrapped store keeps it (for encryptedstore, the
// ciphertext's).
type Lister interface {
	List(ctx context.Context) ([]SessionInfo, error)
}
