package remoteauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

var (
	// ErrLeaseHeld is wrapped by Leaser.AcquireLease when another owner holds a live lease of the
	// session, and by the Session methods that gave up waiting for it. The error is also a
	// *LeaseHeldError, which names the holder: use errors.As to read it.
	ErrLeaseHeld = errors.New("remoteauth: the session is leased by another owner")

	// ErrLeaseLost is wrapped by the methods of a Lease that is no longer the session's newest
	// lease, or that was released: a newer lease was granted after it expired, or its holder
	// released it. A Session whose lease is lost stops writing to the store for good.
	ErrLeaseLost = errors.New("remoteauth: the session lease was lost")
)

// LeaseHeldError reports that another owner holds a live lease of a session. It wraps
// ErrLeaseHeld.
type LeaseHeldError struct {
	Session string
	// Owner is the holder's owner string, as given to AcquireLease.
	Owner string
	// Expires is when the holder's lease expires unless it is renewed, by the clock of the
	// store's server (or host, for filestore and memstore).
	Expires time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("%v: session %q is leased by %q until %s", ErrLeaseHeld, e.Session, e.Owner, e.Expires.Format(time.RFC3339Nano))
}

// Unwrap returns ErrLeaseHeld, so that errors.Is(err, ErrLeaseHeld) holds.
func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// MinStoreLeaseTTL is the shortest lease a Leaser must grant: a millisecond, the resolution of
// Redis's PX. MaxLeaseOwnerLen is the longest owner string it must accept, in bytes.
const (
	MinStoreLeaseTTL = time.Millisecond
	MaxLeaseOwnerLen = 200
)

// ValidateLeaseRequest checks the arguments of Leaser.AcquireLease that are not the session
// name: owner is 1 to MaxLeaseOwnerLen bytes of UTF-8, and ttl is at least MinStoreLeaseTTL.
// Stores call it (after ValidateSessionName) before touching their backend.
func ValidateLeaseRequest(owner string, ttl time.Duration) error {
	switch {
	case owner == "":
		return errors.New("remoteauth: the lease owner is empty; name the process that asks (Session uses host/pid/random)")
	case len(owner) > MaxLeaseOwnerLen || !utf8.ValidString(owner):
		return fmt.Errorf("remoteauth: lease owner %.20q… must be 1 to %d bytes of UTF-8", owner, MaxLeaseOwnerLen)
	case ttl < MinStoreLeaseTTL:
		return fmt.Errorf("remoteauth: lease TTL %v is shorter than the minimum %v", ttl, MinStoreLeaseTTL)
	}
	return nil
}

// Leaser is the optional capability of a Store that grants leases: time-limited, exclusive
// rights to write one session, so that two processes of one session (a rolling deploy that
// starts the new instance before the old one stops) never both write it, and a process that
// lost its right can never overwrite what the new holder saved. Callers find it by type
// assertion:
//
//	if l, ok := store.(remoteauth.Leaser); ok { lease, err := l.AcquireLease(ctx, session, owner, ttl) }
//
// Session takes a lease by default when its store is a Leaser (see LeaseOptions).
//
// # Tokens and fencing
//
// Each lease carries a token: a number that the store increases for each lease it grants of a
// session, never reuses and never lowers, not even when the session is deleted (the store
// keeps a small record per session ever leased). A lease is live while it is the session's
// newest lease, not released, and not expired. A lease stays valid for the fenced writes of its
// holder (Save, Delete, Renew) while it is the newest lease and not released, even after it
// expired: a holder that was paused past its expiry and comes back before anyone took the
// session over loses nothing. Once a newer lease is granted (which the store does only after
// the previous one expired or was released) or the holder releases it, every fenced write of
// the old lease fails with ErrLeaseLost. That is fencing by generation: a clock can make two
// processes believe they hold a session, but only the newest token can write.
//
// Fenced writes go through the Lease, not through the Store: Store.Save and Store.Delete stay
// unfenced, for tools and for sessions that do not take leases. Leasing protects a session only
// if every process writing it takes leases (Session does by default).
//
// # The contract
//
// Which package storetest checks for every store that implements Leaser:
//
//   - AcquireLease grants owner a lease of session for ttl, unless another lease of session is
//     live: then it returns an error wrapping a *LeaseHeldError (and so ErrLeaseHeld) that names
//     the holder's owner and expiry, and grants nothing. Of concurrent AcquireLease calls for a
//     session without a live lease, in one process or many, exactly one succeeds. The owner
//     string is for people and errors only: the same owner asking twice gets ErrLeaseHeld too.
//     A lease of a session is independent of its archive: a session need not exist to be
//     leased, and Store.Delete does not end a lease.
//   - Token returns the lease's token: higher than the token of every lease granted before it
//     for the session, 1 or more.
//   - Renew extends the lease by its ttl from now, if it is still the session's newest lease and
//     not released (expired or not); otherwise it returns an error wrapping ErrLeaseLost.
//   - Release ends the lease at once, so that another owner can acquire the session without
//     waiting for the expiry. Releasing a lease that is no longer the newest, or twice, returns
//     nil and changes nothing: it never ends a newer holder's lease. After Release, the lease's
//     other methods return ErrLeaseLost.
//   - Save is Store.Save under the lease: it reads r to its end and replaces the session's
//     archive atomically, as Store.Save promises (History stores keep the replaced archive as
//     they do for Store.Save), but only if the lease is still the session's newest and not
//     released when the new archive becomes current. Otherwise it returns an error wrapping
//     ErrLeaseLost, and the current archive stays byte for byte what the newer holder saved.
//     The check must be atomic with the switch of the current archive: in one transaction, one
//     server-side script or one conditional write, so that no newer lease can be granted
//     between the check and the switch. A check made only when the Save starts is not enough:
//     an upload can take longer than a ttl. A store that cannot make the check atomic
//     everywhere says where it cannot in its documentation.
//   - Delete is Store.Delete under the lease, fenced in the same way: a lease that was lost gets
//     ErrLeaseLost and deletes nothing. The lease stays held after Delete.
//   - Session names are checked as in Store (ErrInvalidSession), and owner and ttl with
//     ValidateLeaseRequest, before the backend is touched. Leases of "a", "a-b" and "A" are
//     independent.
//   - Errors name the store and the session and wrap the backend's error with %w; a cancelled
//     ctx gives an error wrapping ctx.Err() and changes nothing. A Lease is safe for concurrent
//     use: Renew may run while Save does.
//   - Expiry is measured by one clock per session: the store server's (Redis, PostgreSQL,
//     MongoDB), or the writers' own clocks where the backend has none to offer (filestore, S3),
//     which then must be synchronised (NTP); a store says which in its documentation.
//
// Stores that wrap another store (encryption, …) must not pass the inner store's Leaser through
// as it is: the inner Lease's Save would bypass the wrapper. They implement Leaser by wrapping
// the inner Lease's Save, or not at all. When the store they wrap is not a Leaser, their
// AcquireLease returns an error wrapping errors.ErrUnsupported and grants nothing: callers
// treat it as a store that does not implement Leaser, and a Session then writes without a lease
// (see "Optional capabilities and wrapper stores" in the package documentation).
type Leaser interface {
	AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (Lease, error)
}

// Lease is a lease of one session granted by a Leaser: see Leaser for the contract.
//
// The shape follows from fencing. The token must be checked by the store in the same atomic
// step that makes a new archive current, so the fenced writes are methods of the Lease (which
// knows its token and session) rather than a token passed around: a store can hold whatever it
// needs for the check (a Redis script, a PostgreSQL connection, an S3 ETag) in the Lease.
type Lease interface {
	// Token returns the lease's fencing token: see Leaser.
	Token() uint64
	// Renew extends the lease by its ttl, or returns an error wrapping ErrLeaseLost.
	Renew(ctx context.Context) error
	// Release ends the lease so that another owner can acquire the session at once.
	Release(ctx context.Context) error
	// Save replaces the session's archive with r, unless the lease was lost (ErrLeaseLost).
	Save(ctx context.Context, r io.Reader) error
	// Delete removes the session's archive, unless the lease was lost (ErrLeaseLost).
	Delete(ctx context.Context) error
}
