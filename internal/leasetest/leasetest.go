// Package leasetest holds the lease helpers that the conformance suite and the stores' own lease
// tests share: acquiring a lease, and taking a session over once its lease has expired.
package leasetest

import (
	"errors"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// TakeOverDeadline bounds how long TakeOver waits for a lease to expire: far more than the short
// TTLs the tests grant, so that a slow machine or server fails no test, yet a store whose leases
// never expire does.
const TakeOverDeadline = 2 * time.Minute

// pollInterval is how often TakeOver tries again.
const pollInterval = 20 * time.Millisecond

// Acquire acquires a lease of session for owner, granted for ttl, and stops the test if that
// fails or the lease's token is 0 (tokens start at 1).
func Acquire(t testing.TB, l remoteauth.Leaser, session, owner string, ttl time.Duration) remoteauth.Lease {
	t.Helper()
	lease, err := l.AcquireLease(t.Context(), session, owner, ttl)
	if err != nil {
		t.Fatalf("AcquireLease(%q, %q, %v): %v", session, owner, ttl, err)
	}
	if lease.Token() == 0 {
		t.Fatalf("AcquireLease(%q, %q) granted token 0, want 1 or more", session, owner)
	}
	return lease
}

// TakeOver waits for the lease of session to expire, by acquiring it for owner until that
// succeeds (within TakeOverDeadline), and returns the lease, granted for ttl. An error other
// than ErrLeaseHeld stops the test at once.
func TakeOver(t testing.TB, l remoteauth.Leaser, session, owner string, ttl time.Duration) remoteauth.Lease {
	t.Helper()
	deadline := time.Now().Add(TakeOverDeadline)
	for {
		lease, err := l.AcquireLease(t.Context(), session, owner, ttl)
		switch {
		case err == nil:
			return lease
		case !errors.Is(err, remoteauth.ErrLeaseHeld):
			t.Fatalf("AcquireLease(%q, %q) while waiting for a lease to expire: %v", session, owner, err)
		case time.Now().After(deadline):
			t.Fatalf("AcquireLease(%q, %q): still %v %v later, want the lease to have expired", session, owner, err, TakeOverDeadline)
		}
		time.Sleep(pollInterval)
	}
}
