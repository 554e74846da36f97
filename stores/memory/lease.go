package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// leaseState is what the Store knows of the leases of one session.
type leaseState struct {
	token   uint64 // the newest token granted; the next lease gets token+1
	owner   string // its owner
	expires time.Time
	held    bool // false once the newest lease was released
}

// AcquireLease grants owner a lease of session for ttl, unless another owner's lease of it is
// live: then the error wraps a *remoteauth.LeaseHeldError naming the holder. Expiry is measured
// by this process's clock (monotonic). It implements remoteauth.Leaser; the Store's mutex makes
// every step of a lease, fenced Saves included, atomic.
func (s *Store) AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (remoteauth.Lease, error) {
	if err := begin(ctx, "acquire a lease of", session); err != nil {
		return nil, err
	}
	if err := remoteauth.ValidateLeaseRequest(owner, ttl); err != nil {
		return nil, opError("acquire a lease of", session, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.leases[session]
	now := time.Now()
	if st == nil {
		if s.leases == nil {
			s.leases = make(map[string]*leaseState)
		}
		st = new(leaseState)
		s.leases[session] = st
	} else if st.held && now.Before(st.expires) {
		return nil, opError("acquire a lease of", session, &remoteauth.LeaseHeldError{Session: session, Owner: st.owner, Expires: st.expires})
	}
	st.token++
	st.owner, st.expires, st.held = owner, now.Add(ttl), true
	return &lease{s: s, session: session, token: st.token, ttl: ttl}, nil
}

// lease is a lease granted by a Store.
type lease struct {
	s       *Store
	session string
	token   uint64
	ttl     time.Duration
}

func (l *lease) Token() uint64 { return l.token }

// check returns an error wrapping ErrLeaseLost unless l is the session's newest lease and not
// released. The caller holds l.s.mu.
func (l *lease) check(op string) error {
	st := l.s.leases[l.session]
	if st.token != l.token || !st.held {
		return opError(op, l.session, fmt.Errorf("lease %d: %w (a newer lease was granted after it expired, or it was released)", l.token, remoteauth.ErrLeaseLost))
	}
	return nil
}

// Renew extends the lease by its ttl from now, unless it was lost.
func (l *lease) Renew(ctx context.Context) error {
	if err := begin(ctx, "renew the lease of", l.session); err != nil {
		return err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if err := l.check("renew the lease of"); err != nil {
		return err
	}
	l.s.leases[l.session].expires = time.Now().Add(l.ttl)
	return nil
}

// Release ends the lease, if it is still the newest; otherwise it does nothing.
func (l *lease) Release(ctx context.Context) error {
	if err := begin(ctx, "release the lease of", l.session); err != nil {
		return err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if st := l.s.leases[l.session]; st.token == l.token {
		st.held = false
	}
	return nil
}

// Save reads r to its end, then, if the lease is still the newest and not released, makes what
// it read the session's archive, as Store.Save does; otherwise it returns an error wrapping
// remoteauth.ErrLeaseLost and changes nothing. The check and the switch happen under one lock.
func (l *lease) Save(ctx context.Context, r io.Reader) error {
	if err := begin(ctx, "save", l.session); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(remoteauth.ContextReader(ctx, r)); err != nil {
		return opError("save", l.session, err)
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if err := l.check("save"); err != nil {
		return err
	}
	l.s.put(l.session, buf.Bytes())
	return nil
}

// Delete removes the session's archive and the kept ones, as Store.Delete does, if the lease is
// still the newest and not released; otherwise it returns an error wrapping
// remoteauth.ErrLeaseLost and deletes nothing.
func (l *lease) Delete(ctx context.Context) error {
	if err := begin(ctx, "delete", l.session); err != nil {
		return err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if err := l.check("delete"); err != nil {
		return err
	}
	delete(l.s.archives, l.session)
	delete(l.s.older, l.session)
	return nil
}
