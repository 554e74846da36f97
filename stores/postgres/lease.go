package postgresstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wwebstore/wwebstore/remoteauth"
)

func createLeases(leases string) string {
	return `CREATE TABLE IF NOT EXISTS ` + leases + ` (
	session    text COLLATE "C" PRIMARY KEY,
	token      bigint NOT NULL CHECK (token > 0),
	owner      text NOT NULL,
	expires_at timestamptz NOT NULL,
	released   boolean NOT NULL
)`
}

// leaseSQL prepares the queries of leases. Expiry is measured by the server's clock
// (clock_timestamp()), never the client's; TTLs are given in microseconds ($3).
func (s *Store) leaseSQL() {
	q := &s.sql
	expiry := `clock_timestamp() + $3::bigint * interval '1 microsecond'`
	// A grant is one statement: the first lease of a session inserts its row with token 1; a
	// later one takes the row over, with the next token, only if its lease was released or has
	// expired. ON CONFLICT locks the row before it evaluates WHERE, so of concurrent grants
	// exactly one updates it; no row returned means that the session is leased.
	q.acquire = `INSERT INTO ` + s.leases + ` AS l (session, token, owner, expires_at, released)
		VALUES ($1, 1, $2, ` + expiry + `, false)
		ON CONFLICT (session) DO UPDATE SET token = l.token + 1, owner = excluded.owner, expires_at = ` + expiry + `, released = false
		WHERE l.released OR l.expires_at <= clock_timestamp()
		RETURNING token`
	q.holder = `SELECT owner, expires_at FROM ` + s.leases + ` WHERE session = $1 AND NOT released AND expires_at > clock_timestamp()`
	q.renew = `UPDATE ` + s.leases + ` SET expires_at = ` + expiry + ` WHERE session = $1 AND token = $2 AND NOT released`
	q.release = `UPDATE ` + s.leases + ` SET released = true WHERE session = $1 AND token = $2 AND NOT released`
	// FOR SHARE: the row stays locked until the Save or Delete commits, so a grant (which
	// updates the row) waits for it, and sees the archive it committed as the previous one.
	q.fence = `SELECT token = $2 AND NOT released FROM ` + s.leases + ` WHERE session = $1 FOR SHARE`
	// A fenced Save inserts the session row if there is none (locked by its insertion until the
	// transaction ends, with gen 0, which no committed row has), so that its chunk rows satisfy
	// the foreign key; an existing row is not locked. Its chunks get a provisional generation
	// until the row is locked: minus the transaction's ID, negative, so never a committed
	// archive's, and unique.
	q.ensureRow = `WITH ins AS (INSERT INTO ` + s.sessions + ` (session, size, chunks, chunk_size, saved_at, gen)
		VALUES ($1, 0, 0, $2, clock_timestamp(), 0) ON CONFLICT (session) DO NOTHING)
		SELECT -txid_current()`
	q.renumber = `UPDATE ` + s.chunks + ` SET gen = $2 WHERE session = $1 AND gen = $3`
}

// AcquireLease grants owner a lease of session for ttl, unless another lease of session is live:
// then the error wraps a *remoteauth.LeaseHeldError naming the holder and its expiry, by the
// server's clock. It implements remoteauth.Leaser: see Leases in the package documentation.
func (s *Store) AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (remoteauth.Lease, error) {
	const op = "acquire a lease of"
	if err := s.begin(ctx, op, session); err != nil {
		return nil, err
	}
	if err := remoteauth.ValidateLeaseRequest(owner, ttl); err != nil {
		return nil, opError(ctx, op, session, err)
	}
	// Each round either grants, or finds the live holder; a round that finds neither saw the
	// holder release or expire between its two statements, and tries again.
	for {
		var token int64
		err := s.pool.QueryRow(ctx, s.sql.acquire, s.args(session, owner, ttl.Microseconds())...).Scan(&token)
		if err == nil {
			return &lease{s: s, session: session, token: token, ttl: ttl}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, opError(ctx, op, session, fmt.Errorf("%s: %w", s.leases, err))
		}
		held := &remoteauth.LeaseHeldError{Session: session}
		err = s.pool.QueryRow(ctx, s.sql.holder, s.args(session)...).Scan(&held.Owner, &held.Expires)
		switch {
		case err == nil:
			return nil, opError(ctx, op, session, held)
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, opError(ctx, op, session, fmt.Errorf("reading the holder from %s: %w", s.leases, err))
		}
	}
}

// lease is a lease granted by a Store: the session's row in the lease table with its token.
type lease struct {
	s       *Store
	session string
	token   int64
	ttl     time.Duration
}

func (l *lease) Token() uint64 { return uint64(l.token) }

// lost is the error of a lease that is no longer the session's newest, or was released.
func (l *lease) lost() error {
	return fmt.Errorf("lease %d: %w (a newer lease was granted after it expired, or it was released)", l.token, remoteauth.ErrLeaseLost)
}

// fence checks, in tx, that l is still the session's newest lease and not released, and locks
// the lease row (FOR SHARE) until tx ends, so that no newer lease is granted before tx commits.
func (l *lease) fence(ctx context.Context, tx pgx.Tx) error {
	var ok bool
	err := tx.QueryRow(ctx, l.s.sql.fence, l.s.args(l.session, l.token)...).Scan(&ok)
	switch {
	case errors.Is(err, pgx.ErrNoRows): // the row was deleted by hand
		return l.lost()
	case err != nil:
		return fmt.Errorf("checking the lease in %s: %w", l.s.leases, err)
	case !ok:
		return l.lost()
	}
	return nil
}

// Renew extends the lease by its ttl from now, by the server's clock, if it is still the
// session's newest lease and not released; otherwise it returns an error wrapping
// remoteauth.ErrLeaseLost. One UPDATE.
func (l *lease) Renew(ctx context.Context) error {
	const op = "renew the lease of"
	if err := l.s.begin(ctx, op, l.session); err != nil {
		return err
	}
	tag, err := l.s.pool.Exec(ctx, l.s.sql.renew, l.s.args(l.session, l.token, l.ttl.Microseconds())...)
	if err != nil {
		return opError(ctx, op, l.session, fmt.Errorf("%s: %w", l.s.leases, err))
	}
	if tag.RowsAffected() == 0 {
		return opError(ctx, op, l.session, l.lost())
	}
	return nil
}

// Release marks the lease released, if it is still the session's newest: another owner can then
// acquire the session at once. Releasing a lease that was superseded, or twice, changes nothing
// and returns nil. One UPDATE.
func (l *lease) Release(ctx context.Context) error {
	const op = "release the lease of"
	if err := l.s.begin(ctx, op, l.session); err != nil {
		return err
	}
	if _, err := l.s.pool.Exec(ctx, l.s.sql.release, l.s.args(l.session, l.token)...); err != nil {
		return opError(ctx, op, l.session, fmt.Errorf("%s: %w", l.s.leases, err))
	}
	return nil
}

// Save is Store.Save under the lease: one transaction that streams r, then locks the session row,
// checks the lease (fence) and makes the new archive current, keeping and evicting as Store.Save
// does. If the lease was lost by then, the error wraps remoteauth.ErrLeaseLost and the
// transaction is rolled back: nothing of it remains.
func (l *lease) Save(ctx context.Context, r io.Reader) error {
	if err := l.s.begin(ctx, "save", l.session); err != nil {
		return err
	}
	if err := l.s.save(ctx, l.session, r, l); err != nil {
		return opError(ctx, "save", l.session, err)
	}
	return nil
}

// Delete is Store.Delete under the lease: one transaction that deletes the session row (and so
// its chunks and kept archives), then checks the lease; if it was lost, the error wraps
// remoteauth.ErrLeaseLost and nothing is deleted. The lease stays held.
func (l *lease) Delete(ctx context.Context) error {
	if err := l.s.begin(ctx, "delete", l.session); err != nil {
		return err
	}
	err := pgx.BeginTxFunc(ctx, l.s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, l.s.sql.delete, l.s.args(l.session)...); err != nil {
			return err
		}
		return l.fence(ctx, tx)
	})
	if err != nil {
		return opError(ctx, "delete", l.session, err)
	}
	return nil
}
