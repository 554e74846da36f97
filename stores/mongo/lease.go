package mongostore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// DefaultLeaseCollection is the default of Options.LeaseCollection.
const DefaultLeaseCollection = "wwebstore_leases"

// leaseTokenKey, in a files document's metadata (leaseTokenField), is the token of the lease that
// the revision was saved under (Lease.Save); revisions saved by Store.Save have none.
const (
	leaseTokenKey   = "wwebstoreLeaseToken"
	leaseTokenField = "metadata." + leaseTokenKey
)

// maxAcquireTries bounds how often AcquireLease tries again when another process granted the
// token it meant to grant, or the lease it found held ended before it could read its holder.
const maxAcquireTries = 10

// leaseDoc is a document of the lease collection: one per lease granted, of which only the
// newest of each session counts (AcquireLease deletes the older ones).
type leaseDoc struct {
	ID       string    `bson:"_id"` // "<key>/<token in 20 digits>": unique, so one grant per token
	Key      string    `bson:"key"` // "<bucket>/<session>"
	Token    int64     `bson:"token"`
	Owner    string    `bson:"owner"`
	Expires  time.Time `bson:"expires"`
	Released bool      `bson:"released"`
}

func leaseID(key string, token uint64) string { return fmt.Sprintf("%s/%020d", key, token) }

// AcquireLease grants owner a lease of session for ttl, unless a lease of session is live: then
// the error wraps a *remoteauth.LeaseHeldError naming the holder. It implements
// remoteauth.Leaser; see the package documentation (Leases) for how, and for what the fencing
// of Lease.Save guarantees on servers without transactions.
func (s *Store) AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (remoteauth.Lease, error) {
	const op = "acquire a lease of"
	bk, err := s.open(op, session)
	if err != nil {
		return nil, err
	}
	if err := remoteauth.ValidateLeaseRequest(owner, ttl); err != nil {
		return nil, wrap(op, session, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap(op, session, err)
	}
	if err := s.ensureLeaseIndex(ctx); err != nil {
		return nil, wrap(op, session, err)
	}
	key := bk.name + "/" + session
	for range maxAcquireTries {
		now, err := s.serverNow(ctx)
		if err != nil {
			return nil, wrap(op, session, err)
		}
		d, err := s.newestLease(ctx, key)
		if err != nil {
			return nil, wrap(op, session, err)
		}
		if d.Token > 0 && !d.Released && d.Expires.After(now) {
			return nil, wrap(op, session, &remoteauth.LeaseHeldError{Session: session, Owner: d.Owner, Expires: d.Expires})
		}
		// Grant the next token: the insert of its document fails on the _id if another process
		// granted it first, so of concurrent grants exactly one succeeds.
		token := uint64(d.Token) + 1
		_, err = s.leases.InsertOne(ctx, leaseDoc{ID: leaseID(key, token), Key: key, Token: int64(token), Owner: owner, Expires: now.Add(ttl)})
		if mongo.IsDuplicateKeyError(err) {
			continue // look again: most likely held now
		}
		if err != nil {
			return nil, wrap(op, session, fmt.Errorf("inserting lease document %q into collection %q: %w", leaseID(key, token), s.leases.Name(), err))
		}
		// Best effort: an older document left behind is ignored, and deleted by the next grant.
		_, _ = s.leases.DeleteMany(ctx, bson.D{{Key: "key", Value: key}, {Key: "token", Value: bson.D{{Key: "$lt", Value: int64(token)}}}})
		return &lease{s: s, bk: bk, session: session, key: key, token: token, ttl: ttl}, nil
	}
	return nil, wrap(op, session, fmt.Errorf("other processes kept granting leases while this call tried, %d times; try again", maxAcquireTries))
}

// newestLease returns the newest lease document of key, or a zero leaseDoc (token 0) if the
// session was never leased.
func (s *Store) newestLease(ctx context.Context, key string) (leaseDoc, error) {
	var d leaseDoc
	err := s.leases.FindOne(ctx, bson.D{{Key: "key", Value: key}}, options.FindOne().SetSort(bson.D{{Key: "token", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return leaseDoc{}, nil
	}
	if err != nil {
		return leaseDoc{}, fmt.Errorf("reading the lease documents of %q in collection %q: %w", key, s.leases.Name(), err)
	}
	return d, nil
}

// ensureLeaseIndex creates the index {key: 1, token: -1} of the lease collection, once per Store.
func (s *Store) ensureLeaseIndex(ctx context.Context) error {
	const mark = "\x00leases" // not a bucket name: those have no NUL
	if _, ok := s.indexed.Load(mark); ok {
		return nil
	}
	if _, err := s.leases.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "key", Value: int32(1)}, {Key: "token", Value: int32(-1)}},
	}); err != nil {
		return fmt.Errorf("creating the index of lease collection %q: %w", s.leases.Name(), err)
	}
	s.indexed.Store(mark, struct{}{})
	return nil
}

// serverNow returns the server's clock, as the hello command reports it (localTime, in
// milliseconds). It is read before the write that uses it, so that an expiry it computes is at
// most a round trip early, never late, and a lease it finds expired has expired.
func (s *Store) serverNow(ctx context.Context) (time.Time, error) {
	var hello struct {
		LocalTime time.Time `bson:"localTime"`
	}
	if err := s.db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return time.Time{}, fmt.Errorf("reading the server's clock (hello): %w", err)
	}
	if hello.LocalTime.IsZero() {
		return time.Time{}, errors.New("reading the server's clock: its hello reply has no localTime; the server cannot grant leases")
	}
	return hello.LocalTime, nil
}

// lease is a lease granted by Store.AcquireLease. Its fields do not change, so it is safe for
// concurrent use.
type lease struct {
	s       *Store
	bk      *bucket
	session string
	key     string
	token   uint64
	ttl     time.Duration
}

// Token returns the lease's token: see remoteauth.Leaser.
func (l *lease) Token() uint64 { return l.token }

// mine selects this lease's document while it is not released.
func (l *lease) mine() bson.D {
	return bson.D{{Key: "_id", Value: leaseID(l.key, l.token)}, {Key: "released", Value: false}}
}

// Renew extends the lease by its ttl from the server's clock, if it is still the session's
// newest lease and not released; otherwise it returns an error wrapping remoteauth.ErrLeaseLost.
func (l *lease) Renew(ctx context.Context) error {
	const op = "renew the lease of"
	if err := ctx.Err(); err != nil {
		return wrap(op, l.session, err)
	}
	now, err := l.s.serverNow(ctx)
	if err != nil {
		return wrap(op, l.session, err)
	}
	res, err := l.s.leases.UpdateOne(ctx, l.mine(), bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: now.Add(l.ttl)}}}})
	if err != nil {
		return wrap(op, l.session, fmt.Errorf("updating lease document %q of collection %q: %w", leaseID(l.key, l.token), l.s.leases.Name(), err))
	}
	if res.MatchedCount == 0 {
		return wrap(op, l.session, l.lost(ctx))
	}
	// A newer lease granted since it expired: the renewal changed nothing that counts.
	if err := l.check(ctx); err != nil {
		return wrap(op, l.session, err)
	}
	return nil
}

// Release ends the lease at once, if it is still the session's newest lease; otherwise it does
// nothing and returns nil.
func (l *lease) Release(ctx context.Context) error {
	const op = "release the lease of"
	if err := ctx.Err(); err != nil {
		return wrap(op, l.session, err)
	}
	if _, err := l.s.leases.UpdateOne(ctx, l.mine(), bson.D{{Key: "$set", Value: bson.D{{Key: "released", Value: true}}}}); err != nil {
		return wrap(op, l.session, fmt.Errorf("updating lease document %q of collection %q: %w", leaseID(l.key, l.token), l.s.leases.Name(), err))
	}
	return nil
}

// Save is Store.Save under the lease: see the package documentation (Leases) for when the
// lease is checked and what that guarantees.
func (l *lease) Save(ctx context.Context, r io.Reader) error {
	return l.s.save(ctx, l.session, r, l.fence())
}

// Delete is Store.Delete under the lease: it checks the lease first, and leaves alone the
// revisions saved under a newer lease.
func (l *lease) Delete(ctx context.Context) error {
	return l.s.delete(ctx, l.session, l.fence())
}

func (l *lease) fence() *fence { return &fence{token: l.token, check: l.check} }

// check returns nil if the lease is still the session's newest and not released, and an error
// wrapping remoteauth.ErrLeaseLost if not.
func (l *lease) check(ctx context.Context) error {
	d, err := l.s.newestLease(ctx, l.key)
	if err != nil {
		return err
	}
	if uint64(d.Token) != l.token || d.Released {
		return l.lostTo(d)
	}
	return nil
}

// lost returns the error wrapping remoteauth.ErrLeaseLost of a lease that no longer holds,
// naming the newer holder if it can be read.
func (l *lease) lost(ctx context.Context) error {
	d, err := l.s.newestLease(ctx, l.key)
	if err != nil {
		return fmt.Errorf("lease token %d was released or superseded (%v): %w", l.token, err, remoteauth.ErrLeaseLost)
	}
	return l.lostTo(d)
}

func (l *lease) lostTo(d leaseDoc) error {
	if uint64(d.Token) > l.token {
		return fmt.Errorf("lease token %d was superseded by token %d of %q: %w", l.token, d.Token, d.Owner, remoteauth.ErrLeaseLost)
	}
	return fmt.Errorf("lease token %d was released: %w", l.token, remoteauth.ErrLeaseLost)
}
