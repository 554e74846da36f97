package remoteauth

import (
	"context"
	"fmt"
	"io"
	"regexp"
)

// Store keeps session archives. It is the contract between the Session engine and a backend
// (file, memory, MongoDB, Redis, S3, PostgreSQL). The archive is opaque to the store: a zip stream
// made by the engine. Every implementation must keep these promises; package storetest checks them.
//
//   - Save reads r to its end and replaces the session's previous archive atomically. It never holds
//     the whole archive in memory (memstore excepted). If r returns an error, ctx ends, the process
//     dies or the server goes away mid-way, the previous archive stays readable byte for byte, and no
//     partial archive is ever visible to Extract or SessionExists.
//   - Extract writes the session's archive to w. For a missing session it returns an error wrapping
//     ErrNotFound and writes nothing.
//   - Delete removes the session's archive. Deleting a missing session returns nil.
//   - SessionExists reports whether the session has an archive: (false, nil) when it has none; any
//     failure to find out is an error, never a silent false.
//   - Session names are checked with ValidateSessionName; a store returns an error wrapping
//     ErrInvalidSession for any other name, before touching the backend. Sessions are isolated: "a",
//     "a-b" and "A" never see each other's data.
//   - Errors wrap the backend's error with %w and name the store and the session.
//   - A Store is safe for concurrent use. Concurrent Saves of one session leave exactly one of the
//     inputs, whole; an Extract racing a Save returns either archive, whole.
//
// Optional capabilities are separate interfaces that a Store may also implement; callers find them
// by type assertion.
type Store interface {
	SessionExists(ctx context.Context, session string) (bool, error)
	Save(ctx context.Context, session string, r io.Reader) error
	Extract(ctx context.Context, session string, w io.Writer) error
	Delete(ctx context.Context, session string) error
}

// MaxSessionNameLen is the longest session name a store must accept. It leaves room for what
// stores add to a name within the limits of their backends: a file name and a MongoDB namespace
// are limited to 255 bytes, and filestore may double a name's length by escaping upper-case
// letters.
const MaxSessionNameLen = 100

var sessionNameRE = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)

// ValidateSessionName reports whether name may be used as a session name: 1 to MaxSessionNameLen
// characters from A–Z, a–z, 0–9, '-' and '_' (the characters RemoteAuth allows in a clientId, so
// every RemoteAuth session name is valid). The error wraps ErrInvalidSession.
func ValidateSessionName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the session name is empty", ErrInvalidSession)
	case len(name) > MaxSessionNameLen:
		return fmt.Errorf("%w: session name %.20q… is %d bytes long, more than %d", ErrInvalidSession, name, len(name), MaxSessionNameLen)
	case !sessionNameRE.MatchString(name):
		return fmt.Errorf("%w: session name %q may only hold letters A-Z and a-z, digits, '-' and '_'", ErrInvalidSession, name)
	}
	return nil
}

// SessionName returns the session name that RemoteAuth uses for clientID: "RemoteAuth-<clientID>",
// or "RemoteAuth" when clientID is empty. A clientID must match ^[-_A-Za-z0-9]+$, as in RemoteAuth;
// otherwise the error wraps ErrInvalidSession.
func SessionName(clientID string) (string, error) {
	if clientID == "" {
		return "RemoteAuth", nil
	}
	if !sessionNameRE.MatchString(clientID) {
		return "", fmt.Errorf("%w: clientId %q: only alphanumeric characters, underscores and hyphens are allowed", ErrInvalidSession, clientID)
	}
	name := "RemoteAuth-" + clientID
	if err := ValidateSessionName(name); err != nil {
		return "", fmt.Errorf("clientId %.20q…: %w", clientID, err)
	}
	return name, nil
}

// ContextReader returns a reader that reads from r until ctx ends: each Read first checks ctx and
// returns its error once it has ended. Stores wrap the reader given to Save with it, so that a
// cancelled Save stops between two reads even when r would not.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
