package remoteauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"
)

// Defaults and limits of LeaseOptions.
const (
	DefaultLeaseTTL  = 30 * time.Second
	MinLeaseTTL      = 3 * time.Second
	DefaultLeaseWait = 2 * time.Minute
	// LeasePollInterval is how often a Session waiting for a lease asks the store again.
	LeasePollInterval = time.Second
)

// LeaseOptions configure how a Session leases its session from a store that implements Leaser
// (every store of this repository does; see Leaser). With any other store they are ignored, as
// they are with a wrapper store whose AcquireLease says errors.ErrUnsupported (it wraps a store
// without leases): the Session then writes without a lease, and logs that once at debug level.
//
// Leasing is on by default: a stale instance overwriting a newer login (which costs a new QR
// scan) is silent and costly, while a lease costs one small write every TTL/3 and a wait at
// start only when another instance of the session is alive. The Session takes the lease before
// it first touches the store (Restore, or the first backup), waiting as Wait says; renews it
// every TTL/3 in the background; saves every backup under it (Lease.Save: a Session whose lease
// was taken over can never overwrite the newer archive); and releases it in Close after the
// final backup, or in Delete. A rolling deploy then hands over cleanly: the new instance's
// Restore waits until the old instance's Close has saved and released, then restores that
// final archive.
//
// If the lease is lost (a renewal finds that another instance took the session over, after
// this one failed to renew it for a whole TTL: a network partition, a paused process), the
// Session stops writing at once and for good: Backup and Close return errors wrapping
// ErrLeaseLost, Run returns one, the loss is logged as an error, and nothing is deleted. Restart
// the process to restore the new owner's archive.
//
// A Session that holds a lease renews it from a goroutine until Close, Delete or Abandon: always
// end a Session with one of them, or the session stays leased while the process lives.
//
// Deployments that start the new instance only once it reports ready (a Kubernetes rolling
// update with maxUnavailable 0) must not make readiness wait for Restore: the old instance is
// only stopped once the new one is ready, and the new one would wait for the old one's lease
// until Wait ends.
type LeaseOptions struct {
	// Disabled turns leasing off: the Session writes with Store.Save and Store.Delete, as
	// RemoteAuth does, and two instances of a session can overwrite each other.
	Disabled bool

	// TTL is how long the lease lasts unless renewed; the Session renews it every TTL/3. It is
	// how long a crashed instance blocks the next one. Default 30 s (DefaultLeaseTTL); at least
	// 3 s (MinLeaseTTL).
	TTL time.Duration

	// Owner names this instance in the store and in the errors of others: ErrLeaseHeld says who
	// holds a session. Default "<hostname>/<pid>/<8 random hex digits>"; at most
	// MaxLeaseOwnerLen bytes of UTF-8. The owner identifies nobody: two Sessions with one Owner
	// still exclude each other.
	Owner string

	// Wait is how long the Session waits for another instance's lease to be released or to
	// expire before it fails with an error wrapping ErrLeaseHeld (and a *LeaseHeldError naming
	// the holder). It polls every LeasePollInterval. Default 2 minutes (DefaultLeaseWait): an old
	// instance's SIGTERM grace period (30 s on Heroku and Kubernetes) plus a crashed instance's
	// TTL, with room to spare. A negative Wait fails at once.
	Wait time.Duration
}

func (o LeaseOptions) withDefaults() (LeaseOptions, error) {
	switch {
	case o.TTL == 0:
		o.TTL = DefaultLeaseTTL
	case o.TTL < MinLeaseTTL:
		return o, fmt.Errorf("remoteauth: Lease.TTL %v is shorter than the minimum %v", o.TTL, MinLeaseTTL)
	}
	if o.Wait == 0 {
		o.Wait = DefaultLeaseWait
	}
	if o.Owner == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "unknown-host"
		}
		o.Owner = fmt.Sprintf("%.100s/%d/%08x", host, os.Getpid(), rand.Uint32())
	}
	if err := ValidateLeaseRequest(o.Owner, o.TTL); err != nil {
		return o, fmt.Errorf("Options.Lease: %w", err)
	}
	return o, nil
}

// sessionLease is the lease state of a Session, guarded by Session.mu.
type sessionLease struct {
	leaser    Leaser        // nil: the Session does not lease; set to nil when it says ErrUnsupported
	held      Lease         // the lease while held
	lost      error         // set once the lease is lost, never cleared
	lostCh    chan struct{} // closed when lost is set
	stopRenew context.CancelFunc
	renewDone chan struct{} // closed when the renewer returns
}

func newSessionLease(store Store, o LeaseOptions) sessionLease {
	l := sessionLease{lostCh: make(chan struct{})}
	if leaser, ok := store.(Leaser); ok && !o.Disabled {
		l.leaser = leaser
	}
	return l
}

// ensureLease makes sure that the Session holds its lease before it touches the store, taking
// it (and waiting for it, as Options.Lease.Wait says) if need be. It returns an error wrapping
// ErrLeaseLost once the lease was lost, and ErrClosed if abort is closed while it waits. The
// caller holds the busy token.
func (s *Session) ensureLease(ctx context.Context, abort <-chan struct{}) error {
	s.mu.Lock()
	leaser, held, lost := s.lease.leaser, s.lease.held, s.lease.lost
	s.mu.Unlock()
	if leaser == nil {
		return nil
	}
	if lost != nil {
		return lost
	}
	if held != nil {
		return nil
	}
	o := s.opts.Lease
	deadline := time.Now().Add(o.Wait)
	waiting := false
	for {
		l, err := leaser.AcquireLease(ctx, s.name, o.Owner, o.TTL)
		if err == nil {
			s.holdLease(l)
			s.log.Info("acquired the session lease", "token", l.Token(), "owner", o.Owner, "ttl", o.TTL)
			return nil
		}
		if errors.Is(err, errors.ErrUnsupported) {
			// A wrapper store whose inner store grants no leases: as if it were no Leaser.
			s.mu.Lock()
			s.lease.leaser = nil
			s.mu.Unlock()
			s.log.Debug("the store grants no leases; writing without one", "reason", err)
			return nil
		}
		var h *LeaseHeldError
		if !errors.As(err, &h) {
			return fmt.Errorf("acquiring the session lease: %w", err)
		}
		if o.Wait < 0 || !time.Now().Before(deadline) {
			return fmt.Errorf("another instance holds the session (waited %v, Options.Lease.Wait; stop that instance, or let its lease expire): %w", max(o.Wait, 0), err)
		}
		if !waiting {
			s.log.Info("waiting for another instance to release the session lease", "holder", h.Owner, "expires", h.Expires, "wait", o.Wait)
			waiting = true
		}
		t := time.NewTimer(min(jitter(LeasePollInterval), time.Until(deadline)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting for the session lease: %w)", ctx.Err(), err)
		case <-abort:
			t.Stop()
			return ErrClosed
		}
	}
}

// holdLease records l as held and starts renewing it.
func (s *Session) holdLease(l Lease) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.mu.Lock()
	s.lease.held, s.lease.stopRenew, s.lease.renewDone = l, stop, done
	s.mu.Unlock()
	go s.renew(ctx, l, done)
}

// renew renews l every TTL/3 until ctx ends or the lease is lost. A renewal that fails for
// another reason (the store is unreachable) is logged and tried again at the next tick: the
// lease stays valid for fenced writes until someone else takes it.
func (s *Session) renew(ctx context.Context, l Lease, done chan<- struct{}) {
	defer close(done)
	every := s.opts.Lease.TTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		err := l.Renew(rctx)
		cancel()
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, ErrLeaseLost):
			s.loseLease(err)
			return
		default:
			s.log.Warn("could not renew the session lease; trying again", "in", every, "err", err)
		}
	}
}

// loseLease records that the lease was lost: the Session never writes the store again.
func (s *Session) loseLease(err error) {
	s.mu.Lock()
	first := s.lease.lost == nil
	if first {
		s.lease.lost = fmt.Errorf("another instance took the session over, so this Session stopped writing it (restart to restore the new owner's archive): %w", err)
		s.lease.held = nil
		if s.lease.stopRenew != nil {
			s.lease.stopRenew()
		}
		close(s.lease.lostCh)
	}
	s.mu.Unlock()
	if first {
		s.log.Error("lost the session lease: backups stopped; nothing was deleted", "err", err)
	}
}

// leaseLost returns the error of a lost lease, or nil.
func (s *Session) leaseLost() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease.lost
}

// releaseLease stops renewing the lease and releases it, within ctx. A failure is logged: the
// lease then expires after its TTL.
func (s *Session) releaseLease(ctx context.Context) {
	s.mu.Lock()
	l, stop, done := s.lease.held, s.lease.stopRenew, s.lease.renewDone
	s.lease.held = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	if l == nil {
		return
	}
	if err := l.Release(ctx); err != nil {
		s.log.Warn("could not release the session lease; the next instance waits for it to expire", "ttl", s.opts.Lease.TTL, "err", err)
		return
	}
	s.log.Info("released the session lease", "token", l.Token())
}

// heldLease returns the lease that fenced writes must go through: nil when the Session does not
// lease, or an error when it should hold one and does not (it was lost).
func (s *Session) heldLease() (Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease.leaser == nil {
		return nil, nil
	}
	if s.lease.held == nil {
		if s.lease.lost != nil {
			return nil, s.lease.lost
		}
		return nil, errors.New("remoteauth: internal error: a store write without the session lease")
	}
	return s.lease.held, nil
}

// save saves r as the session's archive: under the lease when the Session leases.
func (s *Session) save(ctx context.Context, r io.Reader) error {
	l, err := s.heldLease()
	switch {
	case err != nil:
		return err
	case l != nil:
		return l.Save(ctx, r)
	}
	return s.store.Save(ctx, s.name, r)
}

// deleteRemote deletes the session's archive: under the lease when the Session leases.
func (s *Session) deleteRemote(ctx context.Context) error {
	l, err := s.heldLease()
	switch {
	case err != nil:
		return err
	case l != nil:
		return l.Delete(ctx)
	}
	return s.store.Delete(ctx, s.name)
}
