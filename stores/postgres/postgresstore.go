// Package postgresstore is a [remoteauth.Store] that keeps session archives in PostgreSQL, through
// a [pgxpool.Pool] (github.com/jackc/pgx/v5). It works with PostgreSQL 11 and later (tested with
// 15), directly or through PgBouncer in transaction pooling mode.
//
// # Data layout
//
// Two tables, created by [New] unless [Options.SkipCreateTables] is set (names are the
// defaults; see [Options.Table], [Options.ChunkTable] and [Options.Schema]):
//
//	CREATE TABLE wwebstore_sessions (
//		session    text COLLATE "C" PRIMARY KEY,          -- the session name, byte for byte
//		size       bigint NOT NULL CHECK (size >= 0),      -- archive size in bytes
//		chunks     integer NOT NULL CHECK (chunks >= 0),   -- number of rows in the chunk table
//		chunk_size integer NOT NULL CHECK (chunk_size > 0), -- Options.ChunkSize of the Save
//		saved_at   timestamptz NOT NULL                    -- when the Save finished writing
//	);
//	CREATE TABLE wwebstore_sessions_chunks (
//		session text COLLATE "C" NOT NULL
//			REFERENCES wwebstore_sessions (session) ON DELETE CASCADE,
//		seq     integer NOT NULL CHECK (seq >= 0),         -- 0, 1, 2, … in archive order
//		data    bytea NOT NULL,                            -- chunk_size bytes; the last may be shorter
//		PRIMARY KEY (session, seq)
//	);
//	ALTER TABLE wwebstore_sessions_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
//
// A session's archive is the concatenation of its chunk rows in seq order. An empty archive has a
// session row and no chunk rows. The chunk data is stored out of line without compression
// (STORAGE EXTERNAL): archives are zip files, already compressed, so PostgreSQL's own compression
// would spend CPU for nothing. The "C" collation makes names compare byte for byte: "a" and "A"
// are different sessions.
//
// Table names are quoted identifiers (see [pgx.Identifier]): they are used exactly as given,
// upper-case letters, dots and quotes included, so "Sessions" and "sessions" are two tables.
//
// # Transactions
//
// Save runs one READ COMMITTED transaction: it upserts the session row, which locks it until the
// transaction ends; deletes the session's chunk rows; streams the new chunks with COPY … FROM
// STDIN (BINARY), reading one chunk of r at a time; updates the session row with the size and
// chunk count; and commits. Readers see the previous archive until the commit and the new one
// after it. If r fails, ctx ends, the connection is cut or the process dies, the transaction is
// rolled back (by the server, when the connection is gone) and the previous archive stays as it
// was; no chunk of the failed Save remains. Concurrent Saves of one session, in this process or
// any other, wait for each other on the row lock and all succeed, one after the other; the last
// to commit wins. Saves of different sessions do not wait for each other.
//
// Extract runs a REPEATABLE READ, READ ONLY transaction, so that it reads one consistent
// snapshot even while Saves commit: it first reads the session row along with the count, total
// size and highest seq of the chunk rows, and refuses an archive that does not add up (an error
// wrapping [remoteauth.ErrCorruptArchive], nothing written); then it streams the chunks in seq
// order, writing each to w as it arrives, and checks the sequence and the total again as it goes.
// A missing session row is an error wrapping [remoteauth.ErrNotFound], with nothing written.
//
// Delete deletes the session row; the foreign key deletes its chunks in the same statement.
// SessionExists looks for the session row. Each method uses one pooled connection at a time.
//
// # Memory
//
// Save holds one chunk of the archive ([Options.ChunkSize], 1 MiB by default) plus pgx's 64 KiB
// copy buffer; Extract holds one chunk row, in pgx's read buffer. Neither ever holds the archive.
//
// # PgBouncer and prepared statements
//
// The store keeps no state in a database session: no SET outside a transaction, no session
// advisory locks, no LISTEN, no temporary tables, no named prepared statements. Its queries run
// in [pgx.QueryExecModeExec] (the extended protocol with the unnamed statement, one round trip
// per query) unless [Options.UsePoolExecMode] is set; the chunk stream of Extract uses the unnamed
// statement with binary results, and COPY uses the simple query protocol, whatever the mode. So
// it works through PgBouncer in transaction pooling mode, with or without PgBouncer's own
// prepared statement support (max_prepared_statements), and through other poolers that keep a
// transaction on one server connection.
//
// # Errors
//
// Errors name the package, the operation and the session, as in
//
//	postgresstore: save session "RemoteAuth-alice": copying the chunks: <the pgx error>
//
// and wrap the underlying error with %w: a *[github.com/jackc/pgx/v5/pgconn.PgError] for an error the server reported
// (errors.As gives its SQLSTATE), a network error when the connection failed, the reader's or the
// writer's error, or ctx's error ([context.Canceled], [context.DeadlineExceeded]) whenever ctx
// ended during the call. A session name that [remoteauth.ValidateSessionName] refuses gives an
// error wrapping [remoteauth.ErrInvalidSession] before any query.
//
// # Server settings that matter
//
// statement_timeout applies to the COPY of a whole archive and to Extract's chunk query, and
// lock_timeout to a Save waiting for another Save of the same session: leave them unset, or larger
// than the longest transfer, for the store's role (ALTER ROLE … SET) or pool (RuntimeParams).
// idle_in_transaction_session_timeout does not apply while a COPY waits for r. A Save needs room
// for both archives until it commits; the old rows become dead tuples that autovacuum reclaims.
//
// # URLs
//
// Importing postgresstore registers the "postgres" and "postgresql" schemes with
// [remoteauth.OpenStore]. The URL is a libpq/pgx connection URL, plus the store's own query
// parameters, which are removed before the rest is given to [pgxpool.ParseConfig]:
//
//	postgres://user:password@host:5432/db?sslmode=require&table=sessions
//	postgresql://host/db?schema=wwebstore&table=Sessions&chunk_size=4MiB&pool_max_conns=8
//
//	table               Options.Table
//	chunk_table         Options.ChunkTable
//	schema              Options.Schema
//	chunk_size          Options.ChunkSize: bytes, or a number followed by KiB or MiB
//	create_tables       "false" sets Options.SkipCreateTables ("true" is the default)
//	use_pool_exec_mode  "true" sets Options.UsePoolExecMode; pair it with pgx's own
//	                    default_query_exec_mode parameter
//
// Every other parameter is pgx's (sslmode, pool_max_conns, application_name, …). The store that
// OpenStore returns owns its pool: close it with its Close method (it implements io.Closer).
package postgresstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Defaults and limits of Options.
const (
	// DefaultTable is the default for Options.Table.
	DefaultTable = "wwebstore_sessions"
	// ChunkTableSuffix is appended to Options.Table when Options.ChunkTable is empty.
	ChunkTableSuffix = "_chunks"
	// DefaultChunkSize is the default for Options.ChunkSize: 1 MiB.
	DefaultChunkSize = 1 << 20
	// MinChunkSize and MaxChunkSize bound Options.ChunkSize.
	MinChunkSize = 1 << 10
	MaxChunkSize = 64 << 20
	// MaxIdentifierLen is the longest table or schema name PostgreSQL keeps (NAMEDATALEN-1
	// bytes); New refuses longer ones instead of letting the server cut them short.
	MaxIdentifierLen = 63
)

// rollbackTimeout bounds the ROLLBACK that follows a failed Save or an Extract, which runs even
// when ctx has ended so that a healthy connection goes back to the pool clean. If it fails, pgx
// closes the connection and the server rolls back on its own.
const rollbackTimeout = 5 * time.Second

// Options configures a Store. The zero value, like a nil *Options, means the defaults.
type Options struct {
	// Table is the name of the session table. Empty means DefaultTable ("wwebstore_sessions").
	// Names are quoted: they are used exactly as given, case included. At most
	// MaxIdentifierLen bytes.
	Table string

	// ChunkTable is the name of the chunk table. Empty means Table + ChunkTableSuffix
	// ("wwebstore_sessions_chunks" by default). At most MaxIdentifierLen bytes.
	ChunkTable string

	// Schema is the schema of both tables, which must exist. Empty means none: the names are
	// unqualified and resolved through the connection's search_path (usually "public").
	Schema string

	// ChunkSize is the number of bytes of the archive in each chunk row, between MinChunkSize
	// (1 KiB) and MaxChunkSize (64 MiB). Zero means DefaultChunkSize (1 MiB). Save holds one
	// chunk in memory, Extract one row. Archives saved with another chunk size stay readable.
	ChunkSize int

	// SkipCreateTables makes New leave the database alone: it neither creates nor checks the
	// tables, which must then exist (created by a migration from the schema in the package
	// documentation). Without it, New creates the tables that are missing, which needs the
	// CREATE privilege on the schema only when a table is missing.
	SkipCreateTables bool

	// UsePoolExecMode makes the store's queries run in the pool's DefaultQueryExecMode (by
	// default pgx's cached prepared statements) instead of pgx.QueryExecModeExec. Set it only
	// when the connections are not shared through a transaction-mode pooler, or when the pooler
	// handles prepared statements (PgBouncer 1.21+ with max_prepared_statements). It saves the
	// server a parse of each small query; the chunk transfers are the same in either mode.
	UsePoolExecMode bool
}

// Store is a remoteauth.Store backed by PostgreSQL. It is safe for concurrent use, also by
// several processes sharing the tables.
type Store struct {
	pool      *pgxpool.Pool
	ownsPool  bool
	closeOnce sync.Once

	sessions, chunks string // quoted, maybe schema-qualified names
	chunkSize        int
	mode             []any // leading arguments of every query: the exec mode, or nothing

	sql struct {
		exists, lock, deleteChunks, copy, finish, meta, chunks, delete string
	}
}

var (
	_ remoteauth.Store = (*Store)(nil)
	_ io.Closer        = (*Store)(nil)
)

// New returns a Store that keeps archives in the tables that opts names, through pool. Unless
// opts.SkipCreateTables is set it creates the tables that are missing, in one transaction that
// holds a transaction-scoped advisory lock, so that several processes starting at once do not
// trip over each other. A nil opts means the defaults.
//
// The pool stays the caller's: Close of a Store made by New does not close it.
func New(ctx context.Context, pool *pgxpool.Pool, opts *Options) (*Store, error) {
	if pool == nil {
		return nil, errors.New("postgresstore: nil pool")
	}
	s, err := newStore(pool, opts)
	if err != nil {
		return nil, err
	}
	if opts == nil || !opts.SkipCreateTables {
		if err := s.createTables(ctx); err != nil {
			return nil, fmt.Errorf("postgresstore: creating tables %s and %s: %w", s.sessions, s.chunks, err)
		}
	}
	return s, nil
}

// newStore checks opts and prepares the queries, without touching the database.
func newStore(pool *pgxpool.Pool, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.ChunkTable == "" {
		o.ChunkTable = o.Table + ChunkTableSuffix
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < MinChunkSize || o.ChunkSize > MaxChunkSize {
		return nil, fmt.Errorf("postgresstore: chunk size %d is outside [%d, %d]", o.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	for _, id := range []struct{ what, name string }{{"table", o.Table}, {"chunk table", o.ChunkTable}, {"schema", o.Schema}} {
		if id.what == "schema" && id.name == "" {
			continue
		}
		if err := checkIdentifier(id.name); err != nil {
			return nil, fmt.Errorf("postgresstore: %s name %q: %w", id.what, id.name, err)
		}
	}
	if o.Table == o.ChunkTable {
		return nil, fmt.Errorf("postgresstore: the session table and the chunk table are both named %q", o.Table)
	}

	s := &Store{
		pool:      pool,
		sessions:  qualify(o.Schema, o.Table),
		chunks:    qualify(o.Schema, o.ChunkTable),
		chunkSize: o.ChunkSize,
	}
	if !o.UsePoolExecMode {
		s.mode = []any{pgx.QueryExecModeExec}
	}
	q := &s.sql
	q.exists = `SELECT EXISTS (SELECT 1 FROM ` + s.sessions + ` WHERE session = $1)`
	// The upsert locks the session row (a new row is locked by its own insertion) until the
	// transaction ends: concurrent Saves of one session queue here.
	q.lock = `INSERT INTO ` + s.sessions + ` AS s (session, size, chunks, chunk_size, saved_at)
		VALUES ($1, 0, 0, $2, clock_timestamp())
		ON CONFLICT (session) DO UPDATE SET chunk_size = excluded.chunk_size`
	// A statement of its own, after the lock: in READ COMMITTED its snapshot is taken once the
	// lock is held, so it sees (and deletes) the chunks of a Save that committed while this one
	// waited. Folding it into the upsert (a CTE) would use the snapshot taken before the wait.
	q.deleteChunks = `DELETE FROM ` + s.chunks + ` WHERE session = $1`
	q.copy = `COPY ` + s.chunks + ` (session, seq, data) FROM STDIN (FORMAT binary)`
	q.finish = `UPDATE ` + s.sessions + ` SET size = $2, chunks = $3, saved_at = clock_timestamp() WHERE session = $1`
	// octet_length of an out-of-line bytea reads its TOAST pointer, not its data.
	q.meta = `SELECT s.size, s.chunks, count(c.seq), coalesce(sum(octet_length(c.data)), 0), coalesce(max(c.seq), -1)
		FROM ` + s.sessions + ` s LEFT JOIN ` + s.chunks + ` c ON c.session = s.session
		WHERE s.session = $1 GROUP BY s.session`
	q.chunks = `SELECT seq, data FROM ` + s.chunks + ` WHERE session = $1 ORDER BY seq`
	q.delete = `DELETE FROM ` + s.sessions + ` WHERE session = $1`
	return s, nil
}

// checkIdentifier reports whether name can be a table or schema name that PostgreSQL keeps as
// given.
func checkIdentifier(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > MaxIdentifierLen:
		return fmt.Errorf("%d bytes long, more than PostgreSQL's %d", len(name), MaxIdentifierLen)
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	}
	for _, c := range name {
		if c == 0 {
			return errors.New("holds a NUL byte")
		}
	}
	return nil
}

// qualify returns the quoted name of table, qualified by schema unless schema is empty.
func qualify(schema, table string) string {
	if schema == "" {
		return pgx.Identifier{table}.Sanitize()
	}
	return pgx.Identifier{schema, table}.Sanitize()
}

// TableNames returns the quoted, maybe schema-qualified names of the session table and the chunk
// table, as they appear in the store's SQL, for example "wwebstore_sessions" and
// "wwebstore_sessions_chunks" (with the double quotes).
func (s *Store) TableNames() (sessions, chunks string) { return s.sessions, s.chunks }

// CreateTablesSQL returns the SQL that creates the store's tables if they are missing: the
// statements that New runs (without its lock and its checks), for a migration that creates them
// ahead of time for a store used with SkipCreateTables.
func (s *Store) CreateTablesSQL() string {
	return createSessions(s.sessions) + ";\n" + createChunks(s.sessions, s.chunks) + ";\n" + alterChunks(s.chunks) + ";\n"
}

func createSessions(sessions string) string {
	return `CREATE TABLE IF NOT EXISTS ` + sessions + ` (
	session    text COLLATE "C" PRIMARY KEY,
	size       bigint NOT NULL CHECK (size >= 0),
	chunks     integer NOT NULL CHECK (chunks >= 0),
	chunk_size integer NOT NULL CHECK (chunk_size > 0),
	saved_at   timestamptz NOT NULL
)`
}

func createChunks(sessions, chunks string) string {
	return `CREATE TABLE IF NOT EXISTS ` + chunks + ` (
	session text COLLATE "C" NOT NULL REFERENCES ` + sessions + ` (session) ON DELETE CASCADE,
	seq     integer NOT NULL CHECK (seq >= 0),
	data    bytea NOT NULL,
	PRIMARY KEY (session, seq)
)`
}

// alterChunks keeps chunk data out of line and uncompressed. PostgreSQL 16 could say it in
// CREATE TABLE; ALTER TABLE works from 9.x on.
func alterChunks(chunks string) string {
	return `ALTER TABLE ` + chunks + ` ALTER COLUMN data SET STORAGE EXTERNAL`
}

// createTables creates the tables that are missing. Concurrent CREATE TABLE IF NOT EXISTS of one
// table can fail on PostgreSQL's catalog indexes, so creators take a transaction-scoped advisory
// lock on a hash of the session table's name first. Tables that exist are left alone, so a role
// without the CREATE privilege can use tables made by a migration.
func (s *Store) createTables(ctx context.Context) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.args("wwebstore/postgresstore create "+s.sessions)...); err != nil {
			return err
		}
		var haveSessions, haveChunks bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`, s.args(s.sessions, s.chunks)...).Scan(&haveSessions, &haveChunks); err != nil {
			return err
		}
		if !haveSessions {
			if _, err := tx.Exec(ctx, createSessions(s.sessions)); err != nil {
				return err
			}
		}
		if !haveChunks {
			if _, err := tx.Exec(ctx, createChunks(s.sessions, s.chunks)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, alterChunks(s.chunks)); err != nil {
				return err
			}
		}
		return nil
	})
}

// args returns the arguments of a query: the exec mode option, if any, then args.
func (s *Store) args(args ...any) []any {
	if s.mode == nil {
		return args
	}
	return append(s.mode[:len(s.mode):len(s.mode)], args...)
}

// Close closes the pool if the store owns it (a store from OpenStore), waiting for the
// connections in use to be released. Close of a Store made by New does nothing: its pool is the
// caller's. Close always returns nil.
func (s *Store) Close() error {
	if s.ownsPool {
		s.closeOnce.Do(s.pool.Close)
	}
	return nil
}

// SessionExists reports whether session has an archive, that is a session row.
func (s *Store) SessionExists(ctx context.Context, session string) (bool, error) {
	if err := s.begin(ctx, "check", session); err != nil {
		return false, err
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, s.sql.exists, s.args(session)...).Scan(&ok); err != nil {
		return false, opError(ctx, "check", session, err)
	}
	return ok, nil
}

// Save reads r to its end in chunks and makes what it read session's archive, replacing the
// previous one in one transaction (see the package documentation). If r fails, ctx ends or the
// server fails, Save returns an error wrapping the cause and the previous archive, or its
// absence, stays as it was. r is never read after Save returns.
//
// If the connection is lost while the COMMIT is on its way, the outcome cannot be known: Save
// returns an error, and the session holds either archive, whole.
func (s *Store) Save(ctx context.Context, session string, r io.Reader) error {
	if err := s.begin(ctx, "save", session); err != nil {
		return err
	}
	if err := s.save(ctx, session, r); err != nil {
		return opError(ctx, "save", session, err)
	}
	return nil
}

func (s *Store) save(ctx context.Context, session string, r io.Reader) (err error) {
	// READ COMMITTED whatever default_transaction_isolation says: under REPEATABLE READ a Save
	// that waited for another one's lock would fail with a serialization error instead of
	// going on.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("beginning the transaction: %w", err)
	}
	defer func() {
		if err != nil {
			rollback(ctx, tx)
		}
	}()
	if _, err := tx.Exec(ctx, s.sql.lock, s.args(session, s.chunkSize)...); err != nil {
		return fmt.Errorf("locking the session row: %w", err)
	}
	if _, err := tx.Exec(ctx, s.sql.deleteChunks, s.args(session)...); err != nil {
		return fmt.Errorf("deleting the previous chunks: %w", err)
	}
	src := newCopySource(session, remoteauth.ContextReader(ctx, r), s.chunkSize)
	tag, copyErr := tx.Conn().PgConn().CopyFrom(ctx, src, s.sql.copy)
	// pgx may return from CopyFrom while its goroutine is still in a Read; close waits for it
	// and makes further Reads fail, so that r is not read once Save has returned.
	chunks, size, readErr := src.close()
	switch {
	case readErr != nil:
		// The server's answer to the aborted COPY only repeats the reader's error.
		return fmt.Errorf("reading the archive: %w", readErr)
	case copyErr != nil:
		return fmt.Errorf("copying the chunks: %w", copyErr)
	case tag.RowsAffected() != chunks:
		return fmt.Errorf("COPY stored %d chunks, %d were sent", tag.RowsAffected(), chunks)
	}
	if _, err := tx.Exec(ctx, s.sql.finish, s.args(session, size, chunks)...); err != nil {
		return fmt.Errorf("updating the session row: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		if connectionLost(err) {
			return fmt.Errorf("committing (whether the commit took place is unknown: the session holds the previous archive or this one, whole): %w", err)
		}
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// rollback ends tx after a failure. It runs even if ctx has ended, within rollbackTimeout; if it
// fails, pgx closes the connection, and the server rolls back when it sees it go.
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// Extract writes session's archive to w, from one snapshot (see the package documentation). For a
// session without an archive it returns an error wrapping remoteauth.ErrNotFound and writes
// nothing. If the rows do not add up to the archive that the session row describes, the error
// wraps remoteauth.ErrCorruptArchive; when that shows before the first chunk, nothing is
// written.
func (s *Store) Extract(ctx context.Context, session string, w io.Writer) error {
	if err := s.begin(ctx, "extract", session); err != nil {
		return err
	}
	if err := s.extract(ctx, session, w); err != nil {
		return opError(ctx, "extract", session, err)
	}
	return nil
}

func (s *Store) extract(ctx context.Context, session string, w io.Writer) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("beginning the transaction: %w", err)
	}
	// Read-only: rolling back is how it ends, after a success as after a failure.
	defer rollback(ctx, tx)

	var size, chunks, rows, total, last int64
	err = tx.QueryRow(ctx, s.sql.meta, s.args(session)...).Scan(&size, &chunks, &rows, &total, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: no row in %s", remoteauth.ErrNotFound, s.sessions)
	}
	if err != nil {
		return fmt.Errorf("reading the session row: %w", err)
	}
	// seq is unique and never negative, so count = max+1 = chunks means exactly 0…chunks-1.
	if rows != chunks || last != chunks-1 || total != size {
		return fmt.Errorf("%w: the session row records %d bytes in %d chunks, %s holds %d bytes in %d chunks numbered up to %d",
			remoteauth.ErrCorruptArchive, size, chunks, s.chunks, total, rows, last)
	}
	if chunks == 0 {
		return nil
	}

	// The chunks go through pgconn: one round trip with the unnamed statement, binary results
	// whatever the exec mode (pgx's exec mode would send bytea as hex text), and each row's data
	// is written to w straight from pgx's read buffer.
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rr := tx.Conn().PgConn().ExecParams(qctx, s.sql.chunks, [][]byte{[]byte(session)}, []uint32{textOID}, nil, []int16{binaryFormat, binaryFormat})
	var next, written int64
	for rr.NextRow() {
		v := rr.Values()
		if len(v) != 2 || len(v[0]) != 4 {
			rr.Close()
			return fmt.Errorf("chunk %d: unexpected row of %d columns from %s", next, len(v), s.chunks)
		}
		if seq := int64(int32(binary.BigEndian.Uint32(v[0]))); seq != next {
			rr.Close()
			return fmt.Errorf("%w: chunk %d of %d is missing from %s (next is %d)", remoteauth.ErrCorruptArchive, next, chunks, s.chunks, seq)
		}
		if _, err := w.Write(v[1]); err != nil {
			// Closing the result would read the rest of the archive to discard it: cancelling
			// makes pgx drop the connection instead, and the server stops sending.
			cancel()
			rr.Close()
			return fmt.Errorf("writing the archive: %w", err)
		}
		next++
		written += int64(len(v[1]))
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("reading chunk %d of %d: %w", next, chunks, err)
	}
	if next != chunks || written != size {
		return fmt.Errorf("%w: read %d bytes in %d chunks, the session row records %d bytes in %d chunks",
			remoteauth.ErrCorruptArchive, written, next, size, chunks)
	}
	return nil
}

// Delete removes session's archive: its session row and, through the foreign key, its chunks.
// Deleting a session without an archive returns nil. A Delete that meets a Save of the same
// session in progress waits for it, then deletes what it committed.
func (s *Store) Delete(ctx context.Context, session string) error {
	if err := s.begin(ctx, "delete", session); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, s.sql.delete, s.args(session)...); err != nil {
		return opError(ctx, "delete", session, err)
	}
	return nil
}

// begin checks what every method checks first: the session name, then ctx.
func (s *Store) begin(ctx context.Context, op, session string) error {
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return fmt.Errorf("postgresstore: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return opError(ctx, op, session, err)
	}
	return nil
}

// opError names the operation and the session. When ctx has ended, the error also wraps ctx's
// error, so that errors.Is(err, context.Canceled) holds whichever of pgx's errors came first.
func opError(ctx context.Context, op, session string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
	} else if connectionLost(err) {
		err = fmt.Errorf("connection to the server lost: %w", err)
	}
	return fmt.Errorf("postgresstore: %s session %q: %w", op, session, err)
}

// connectionLost reports whether err says that the connection failed under the protocol: the
// server went away, the network failed, or a deadline passed. pgx reports a connection closed
// under it as io.ErrUnexpectedEOF or a net.Error.
func connectionLost(err error) bool {
	var netErr net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &netErr)
}

const (
	textOID      = 25 // pgtype.TextOID
	binaryFormat = 1  // pgx.BinaryFormatCode
)

// errSourceClosed is what a Read of a closed copySource returns.
var errSourceClosed = errors.New("postgresstore: the COPY is over")

// copySource is the io.Reader that pgconn's CopyFrom sends to the server: the COPY binary format
// (a header, one tuple per chunk, a trailer), made while reading r one chunk at a time. It holds
// one chunk buffer and a small tuple header buffer, and nothing else.
type copySource struct {
	mu      sync.Mutex
	r       io.Reader
	session string
	buf     []byte // the chunk buffer, len = chunk size
	head    []byte // bytes to send before body: the file header, a tuple header or the trailer
	body    []byte // chunk bytes still to send
	hbuf    []byte // storage of head

	started, eof, trailed, closed bool
	chunks, size                  int64
	err                           error // r's error, not io.EOF
}

func newCopySource(session string, r io.Reader, chunkSize int) *copySource {
	return &copySource{r: r, session: session, buf: make([]byte, chunkSize), hbuf: make([]byte, 0, 64+len(session))}
}

// The COPY binary format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
var (
	copyHeader  = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00") // signature, flags, no extension
	copyTrailer = []byte{0xff, 0xff}                                             // field count -1
)

func (c *copySource) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errSourceClosed
	}
	for len(c.head) == 0 && len(c.body) == 0 {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.head)
	c.head = c.head[n:]
	if n < len(p) {
		m := copy(p[n:], c.body)
		c.body = c.body[m:]
		n += m
	}
	return n, nil
}

// fill prepares the next bytes to send: the file header, then a tuple per chunk read from r, then
// the trailer. It returns io.EOF once the trailer is sent, or r's error.
func (c *copySource) fill() error {
	switch {
	case c.err != nil:
		return c.err
	case !c.started:
		c.started = true
		c.head = copyHeader
		return nil
	case c.eof && c.trailed:
		return io.EOF
	case c.eof:
		c.trailed = true
		c.head = copyTrailer
		return nil
	}
	n, err := io.ReadFull(c.r, c.buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		c.eof = true
	case err != nil:
		c.err = err
		return err
	}
	if n > 0 {
		if c.chunks == 1<<31-1 {
			c.err = fmt.Errorf("the archive has more than %d chunks", 1<<31-1)
			return c.err
		}
		h := binary.BigEndian.AppendUint16(c.hbuf[:0], 3) // fields: session, seq, data
		h = binary.BigEndian.AppendUint32(h, uint32(len(c.session)))
		h = append(h, c.session...)
		h = binary.BigEndian.AppendUint32(h, 4)
		h = binary.BigEndian.AppendUint32(h, uint32(c.chunks))
		h = binary.BigEndian.AppendUint32(h, uint32(n))
		c.head, c.body = h, c.buf[:n]
		c.chunks++
		c.size += int64(n)
	}
	return nil
}

// close waits for a Read in progress, makes later Reads fail, and returns the number of chunks
// and bytes read from r, and r's error if it failed.
func (c *copySource) close() (chunks, size int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.buf, c.body = nil, nil
	return c.chunks, c.size, c.err
}
