package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

var _ remoteauth.Leaser = (*Store)(nil)

// AcquireLease grants owner a lease of session for ttl, unless another lease of it is live: then
// the error wraps a *remoteauth.LeaseHeldError naming the holder and its expiry. It implements
// remoteauth.Leaser (see the package documentation, Leases): one Lua script reads and writes the
// session's lease hash, "<prefix>{<session>}:lease", and measures expiry by the server's clock
// (TIME), so leases taken by processes on different hosts compare correctly whatever their
// clocks say. ttl is rounded down to whole milliseconds (Redis's resolution).
func (s *Store) AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (remoteauth.Lease, error) {
	const op = "acquire a lease of"
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return nil, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if err := remoteauth.ValidateLeaseRequest(owner, ttl); err != nil {
		return nil, opError(op, session, err)
	}
	k, err := s.begin(ctx, op, session)
	if err != nil {
		return nil, err
	}
	res, err := acquireScript.Run(ctx, s.rdb, []string{k.lease}, owner, ms(ttl)).Slice()
	if err != nil {
		return nil, opError(op, session, withCtxErr(ctx, err))
	}
	rep, err := parseAcquire(res)
	if err != nil {
		return nil, opError(op, session, fmt.Errorf("key %s: %w", k.lease, err))
	}
	if rep.owner != "" {
		return nil, opError(op, session, &remoteauth.LeaseHeldError{Session: session, Owner: rep.owner, Expires: time.UnixMilli(rep.expires)})
	}
	return &lease{s: s, session: session, k: k, token: rep.token, ttl: ttl}, nil
}

// errBadLease reports a lease hash or script reply that is not what the scripts write.
var errBadLease = errors.New("the lease record is inconsistent (written by something other than redisstore?)")

// acquireReply is acquireScript's reply: a token granted, or the holder's owner.
type acquireReply struct {
	token   uint64 // the token granted, or 0
	owner   string // the holder's owner when refused, or ""
	expires int64  // Unix ms
}

// parseAcquire parses acquireScript's reply: {1, token, expires_ms} or {0, owner, expires_ms}
// (expires_ms then a string, read from the hash).
func parseAcquire(res []any) (acquireReply, error) {
	bad := fmt.Errorf("%w: reply %q", errBadLease, res)
	if len(res) != 3 {
		return acquireReply{}, bad
	}
	var rep acquireReply
	switch exp := res[2].(type) {
	case int64:
		rep.expires = exp
	case string:
		n, err := strconv.ParseInt(exp, 10, 64)
		if err != nil {
			return acquireReply{}, fmt.Errorf("%w: %w", bad, err)
		}
		rep.expires = n
	default:
		return acquireReply{}, bad
	}
	code, _ := res[0].(int64)
	token, _ := res[1].(int64)
	owner, _ := res[1].(string)
	switch {
	case code == 1 && token > 0:
		rep.token = uint64(token)
	case code == 0 && owner != "":
		rep.owner = owner
	default:
		return acquireReply{}, bad
	}
	return rep, nil
}

// lostError is the error of a fenced write or Renew of lease token once it is lost.
func lostError(token uint64) error {
	return fmt.Errorf("lease %d: %w (a newer lease was granted after it expired, or it was released; acquire a new lease and restore the newer archive)", token, remoteauth.ErrLeaseLost)
}

// lease is a lease granted by a Store. Its fields do not change, so it is safe for concurrent
// use; its state is the session's lease hash on the server.
type lease struct {
	s       *Store
	session string
	k       keys
	token   uint64
	ttl     time.Duration
}

func (l *lease) Token() uint64 { return l.token }

// Renew moves the lease's expiry to its ttl from now, by the server's clock, if it is still the
// session's newest lease and not released (expired or not); otherwise it returns an error
// wrapping remoteauth.ErrLeaseLost.
func (l *lease) Renew(ctx context.Context) error {
	const op = "renew the lease of"
	if _, err := l.s.begin(ctx, op, l.session); err != nil {
		return err
	}
	ok, err := renewScript.Run(ctx, l.s.rdb, []string{l.k.lease}, l.token, ms(l.ttl)).Int()
	switch {
	case err != nil:
		return opError(op, l.session, withCtxErr(ctx, err))
	case ok != 1:
		return opError(op, l.session, lostError(l.token))
	}
	return nil
}

// Release ends the lease at once if it is still the session's newest; a superseded or
// already released lease changes nothing and returns nil.
func (l *lease) Release(ctx context.Context) error {
	const op = "release the lease of"
	if _, err := l.s.begin(ctx, op, l.session); err != nil {
		return err
	}
	if err := releaseScript.Run(ctx, l.s.rdb, []string{l.k.lease}, l.token).Err(); err != nil {
		return opError(op, l.session, withCtxErr(ctx, err))
	}
	return nil
}

// Save is Store.Save under the lease: it streams r in chunks as Store.Save does, and its commit
// script makes the new archive current (keeping the previous one per Options.Keep) only if the
// lease is still the session's newest and not released, in the same script that checks the
// token. Otherwise it returns an error wrapping remoteauth.ErrLeaseLost, deletes the chunks it
// wrote, and the current archive stays what the newer holder saved. A Save overtaken by a
// concurrent Store.Save or Store.Delete of another Store returns nil, as Store.Save does, if
// the lease is still good at its commit.
func (l *lease) Save(ctx context.Context, r io.Reader) error {
	if _, err := l.s.begin(ctx, "save", l.session); err != nil {
		return err
	}
	if err := l.s.save(ctx, l.k, r, l.token); err != nil {
		return opError("save", l.session, withCtxErr(ctx, err))
	}
	return nil
}

// Delete is Store.Delete under the lease, checked in the script that deletes: a lost lease gets
// an error wrapping remoteauth.ErrLeaseLost and deletes nothing. The lease stays held.
func (l *lease) Delete(ctx context.Context) error {
	if _, err := l.s.begin(ctx, "delete", l.session); err != nil {
		return err
	}
	return l.s.delete(ctx, l.session, l.k, l.token)
}
