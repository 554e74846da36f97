// Package postgresstore is a [remoteauth.Store] that keeps session archives in PostgreSQL, through
// a [pgxpool.Pool] (github.com/jackc/pgx/v5). It works with PostgreSQL 11 and later (tested with
// 15), directly or through PgBouncer in transaction pooling mode.
//
// # Data layout
//
// Four tables, created by [New] unless [Options.SkipCreateTables] is set (names are the
// defaults; see [Options.Table], [Options.ChunkTable], [Options.VersionTable],
// [Options.LeaseTable] and [Options.Schema]):
//
//	CREATE TABLE wwebstore_sessions (                     -- the current archive of each session
//		session    text COLLATE "C" PRIMARY KEY,          -- the session name, byte for byte
//		size       bigint NOT NULL CHECK (size >= 0),      -- archive size in bytes
//		chunks     integer NOT NULL CHECK (chunks >= 0),   -- number of its rows in the chunk table
//		chunk_size integer NOT NULL CHECK (chunk_size > 0), -- Options.ChunkSize of the Save
//		saved_at   timestamptz NOT NULL,                   -- when the Save finished writing
//		gen        bigint NOT NULL CHECK (gen >= 0)        -- the archive's generation: its ID
//	);
//	CREATE TABLE wwebstore_sessions_chunks (
//		session text COLLATE "C" NOT NULL
//			REFERENCES wwebstore_sessions (session) ON DELETE CASCADE,
//		seq     integer NOT NULL CHECK (seq >= 0),         -- 0, 1, 2, … in archive order
//		data    bytea NOT NULL,                            -- chunk_size bytes; the last may be shorter
//		gen     bigint NOT NULL,                           -- the generation of the archive
//		PRIMARY KEY (session, gen, seq)
//	);
//	ALTER TABLE wwebstore_sessions_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
//	CREATE TABLE wwebstore_sessions_versions (             -- the previous archives that are kept
//		session    text COLLATE "C" NOT NULL
//			REFERENCES wwebstore_sessions (session) ON DELETE CASCADE,
//		gen        bigint NOT NULL CHECK (gen > 0),
//		size, chunks, chunk_size, saved_at                 -- as in the session table
//		PRIMARY KEY (session, gen)
//	);
//	CREATE TABLE wwebstore_sessions_leases (               -- a row per session ever leased
//		session    text COLLATE "C" PRIMARY KEY,          -- no foreign key: it outlives Delete
//		token      bigint NOT NULL CHECK (token > 0),     -- the newest lease's token
//		owner      text NOT NULL,                         -- its owner
//		expires_at timestamptz NOT NULL,                  -- its expiry, by the server's clock
//		released   boolean NOT NULL                       -- whether it was released
//	);
//
// A session's current archive is the concatenation of its chunk rows of the session row's gen,
// in seq order; a kept previous archive, that of the chunk rows of its version row's gen. An
// empty archive has no chunk rows. The chunk data is stored out of line without compression
// (STORAGE EXTERNAL): archives are zip files, already compressed, so PostgreSQL's own compression
// would spend CPU for nothing. The "C" collation makes names compare byte for byte: "a" and "A"
// are different sessions.
//
// Table names are quoted identifiers (see [pgx.Identifier]): they are used exactly as given,
// upper-case letters, dots and quotes included, so "Sessions" and "sessions" are two tables.
//
// # History
//
// A Store implements [remoteauth.History]: it keeps the last [Options.Keep] archives of each
// session ([remoteauth.DefaultKeep], 2, by default: the current one and the one before it). An
// archive's ID is its generation in decimal: a Save gives its archive the larger of the previous
// generation plus one and the server's clock in microseconds since 1970, so IDs grow with each
// Save of a session and a session deleted and saved again does not reuse the IDs of its former
// archives (unless the server's clock went back). The chunk rows of an archive do not move when
// a newer one is saved: keeping the previous archive costs one version row, no copy. Versions
// lists the session row and the version rows, newest first, at most Keep, in one query.
// ExtractVersion reads one of them as Extract reads the current one.
//
// # Leases
//
// A Store implements [remoteauth.Leaser], with a row per session in the lease table (not
// session advisory locks, which are tied to a connection and so break through PgBouncer in
// transaction mode). Expiry is measured by the server's clock (clock_timestamp()) alone.
//
//   - AcquireLease is one INSERT … ON CONFLICT (session) DO UPDATE … WHERE released OR
//     expires_at <= clock_timestamp() RETURNING token: the first lease of a session gets token
//     1; a later one takes the row over with the next token only if the lease in it was
//     released or expired. ON CONFLICT locks the row before it evaluates WHERE, so of
//     concurrent grants, from any number of processes, exactly one succeeds. When no row comes
//     back, a second query reads the live holder for the [remoteauth.LeaseHeldError] (if it was
//     released or expired in between, the grant is tried again).
//   - Renew and Release are one UPDATE each, of the row with the lease's token (Renew only if
//     not released: no row updated is [remoteauth.ErrLeaseLost]).
//   - The fence: a Lease's Save runs the Save transaction below, but locks the session row only
//     after streaming the chunks, under a provisional generation (minus the transaction's ID:
//     negative, unique, never committed; a session without a row gets one, locked by its
//     insertion, for the chunk rows' foreign key). Once it holds the session row, it reads the
//     lease row with SELECT … FOR SHARE, and rolls back with ErrLeaseLost unless the token is
//     its own and not released; otherwise it keeps and evicts as a Save does, gives its chunk
//     rows the archive's generation (an UPDATE of their key: the chunk data is not copied) and
//     commits. The share lock holds until the commit, and a grant updates the row, so no newer
//     lease can be granted between the check and the switch of the archive: the check is atomic
//     with the switch. A stale holder's upload holds no lock that the newer holder's Saves need
//     (except for a session's first Save, whose row it inserted): they go through while it
//     streams, and it fails at the end.
//   - A Lease's Delete deletes the session row, then checks the lease in the same way, in one
//     transaction.
//   - Store.Delete does not touch the lease table: tokens never go back, and a lease outlives
//     the session's archive. The lease rows are small and never deleted; delete those of
//     sessions that are gone by hand if they matter (a session's next lease then starts at
//     token 1 again, which is safe only when no holder of an older lease is alive).
//
// If the connection of a fenced Save is cut, the server rolls it back and the locks go with it,
// as for any Save. A holder cut off for longer than its TTL can be taken over; when it reaches
// the server again, its Saves fail with ErrLeaseLost.
//
// # Transactions
//
// Save runs one READ COMMITTED transaction:
//
//  1. It upserts the session row, which locks it until the transaction ends, and gets the new
//     generation.
//  2. With Keep above 1, it copies the session row, if the session had an archive, into a
//     version row: the current archive becomes the newest kept one, its chunk rows untouched.
//  3. It deletes the version rows beyond the newest Keep-1, and every chunk row of the session
//     that belongs to no version row left (with Keep 1, all of them).
//  4. It streams the new chunks, under the new generation, with COPY … FROM STDIN (BINARY),
//     reading one chunk of r at a time.
//  5. It updates the session row with the generation, size and chunk count, and commits.
//
// Readers see the previous archives until the commit and the new ones after it. If r fails, ctx
// ends, the connection is cut or the process dies, the transaction is rolled back (by the server,
// when the connection is gone): the current archive and the kept ones stay as they were, none is
// added or evicted, and no chunk of the failed Save remains. Concurrent Saves of one session, in
// this process or any other, wait for each other on the row lock and all succeed, one after the
// other; the last to commit wins, and the others are kept in the order they committed. Saves of
// different sessions do not wait for each other.
//
// Extract and ExtractVersion run a REPEATABLE READ, READ ONLY transaction, so that they read one
// consistent snapshot even while Saves commit and evict: first the archive's description (the
// session row, or a kept version row) along with the count, total size and highest seq of its
// chunk rows, refusing an archive that does not add up (an error wrapping
// [remoteauth.ErrCorruptArchive], nothing written); then the chunks in seq order, each written to
// w as it arrives, the sequence and the total checked again as they go. A missing archive is an
// error wrapping [remoteauth.ErrNotFound], with nothing written.
//
// Delete deletes the session row; the foreign keys delete its chunks of every generation and its
// version rows in the same statement. SessionExists looks for the session row, and List lists
// session rows: kept archives are never listed as sessions. Each method uses one pooled
// connection at a time.
//
// # Upgrading tables made before History
//
// Tables made by a version of this store that kept no history (no gen column, the chunk table's
// primary key (session, seq), no version table) are upgraded by [New], in its locked
// transaction, when it finds them so, or by the SQL that [Store.CreateTablesSQL] returns, which
// runs again harmlessly: gen is added to the session and chunk tables with the value 1 for the rows that exist
// (then without a default), the chunk table's primary key becomes (session, gen, seq), and the
// version table is created. Every archive saved before stays whole and current, with ID "1". The
// upgrade needs to own the tables, and holds an ACCESS EXCLUSIVE lock on them while it builds
// the new primary key index (a read of every chunk row's key, not of the data). Stop the
// processes that run an older version of the store first: once upgraded, their Saves fail (they
// write no gen, which has no default), and their Extracts refuse, as corrupt, a session that
// has kept archives.
//
// # Memory
//
// Save holds one chunk of the archive ([Options.ChunkSize], 1 MiB by default) plus pgx's 64 KiB
// copy buffer; Extract and ExtractVersion hold one chunk row, in pgx's read buffer. None ever
// holds the archive. Versions holds at most Keep short rows.
//
// A Lease's Save differs in its order (see Leases): it inserts the session row if there is none,
// streams the chunks under a provisional generation, then takes steps 1 to 3 with the lease check
// after step 1, gives its chunks the new generation and takes step 5. Concurrent Saves of one
// session then stream at the same time and wait for each other only for the switch.
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
// idle_in_transaction_session_timeout does not apply while a COPY waits for r. The tables hold
// Keep archives of each session, and a Save needs room for one more until it commits; the rows
// of evicted archives become dead tuples that autovacuum reclaims.
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
//	version_table       Options.VersionTable
//	lease_table         Options.LeaseTable
//	schema              Options.Schema
//	keep                Options.Keep: archives kept per session, 1 or more (1 keeps no history)
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
	"strconv"
	"strings"
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
	// VersionTableSuffix is appended to Options.Table when Options.VersionTable is empty.
	VersionTableSuffix = "_versions"
	// LeaseTableSuffix is appended to Options.Table when Options.LeaseTable is empty.
	LeaseTableSuffix = "_leases"
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

	// VersionTable is the name of the table that describes the archives kept before the current
	// one (see History in the package documentation). Empty means Table + VersionTableSuffix
	// ("wwebstore_sessions_versions" by default). At most MaxIdentifierLen bytes.
	VersionTable string

	// LeaseTable is the name of the table that holds a row per session ever leased (see Leases
	// in the package documentation). Empty means Table + LeaseTableSuffix
	// ("wwebstore_sessions_leases" by default). At most MaxIdentifierLen bytes.
	LeaseTable string

	// Keep is how many archives of each session the store keeps, the current one included (see
	// remoteauth.History and the package documentation). Zero means remoteauth.DefaultKeep (2:
	// the current archive and the one before it); 1 keeps no history; a negative Keep is an
	// error. There is no upper bound: each kept archive takes its size in the chunk table. Stores
	// that share tables may differ in Keep: a Save evicts beyond its store's Keep, and Versions
	// lists at most its store's Keep archives.
	Keep int

	// Schema is the schema of the tables, which must exist. Empty means none: the names are
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

	sessions, chunks, versions, leases string // quoted, maybe schema-qualified names
	chunkSize                          int
	keep                               int   // archives kept per session, the current one included
	mode                               []any // leading arguments of every query: the exec mode, or nothing

	sql struct {
		exists, lock, keepPrevious, evict, copy, finish, meta, chunks, delete, list string
		versions, versionMeta                                                       string
		// Leases (lease.go).
		acquire, holder, renew, release, fence, ensureRow, renumber string
	}
}

var (
	_ remoteauth.Store   = (*Store)(nil)
	_ remoteauth.Lister  = (*Store)(nil)
	_ remoteauth.History = (*Store)(nil)
	_ remoteauth.Leaser  = (*Store)(nil)
	_ io.Closer          = (*Store)(nil)
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
			return nil, fmt.Errorf("postgresstore: creating or upgrading tables %s, %s, %s and %s: %w", s.sessions, s.chunks, s.versions, s.leases, err)
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
	if o.VersionTable == "" {
		o.VersionTable = o.Table + VersionTableSuffix
	}
	if o.LeaseTable == "" {
		o.LeaseTable = o.Table + LeaseTableSuffix
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	switch {
	case o.Keep == 0:
		o.Keep = remoteauth.DefaultKeep
	case o.Keep < 0:
		return nil, fmt.Errorf("postgresstore: Options.Keep is %d; want 1 or more (0 means the default, %d)", o.Keep, remoteauth.DefaultKeep)
	}
	if o.ChunkSize < MinChunkSize || o.ChunkSize > MaxChunkSize {
		return nil, fmt.Errorf("postgresstore: chunk size %d is outside [%d, %d]", o.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	for _, id := range []struct{ what, name string }{{"table", o.Table}, {"chunk table", o.ChunkTable}, {"version table", o.VersionTable}, {"lease table", o.LeaseTable}, {"schema", o.Schema}} {
		if id.what == "schema" && id.name == "" {
			continue
		}
		if err := checkIdentifier(id.name); err != nil {
			return nil, fmt.Errorf("postgresstore: %s name %q: %w", id.what, id.name, err)
		}
	}
	for _, pair := range [][2]struct{ what, name string }{
		{{"session table", o.Table}, {"chunk table", o.ChunkTable}},
		{{"session table", o.Table}, {"version table", o.VersionTable}},
		{{"chunk table", o.ChunkTable}, {"version table", o.VersionTable}},
		{{"session table", o.Table}, {"lease table", o.LeaseTable}},
		{{"chunk table", o.ChunkTable}, {"lease table", o.LeaseTable}},
		{{"version table", o.VersionTable}, {"lease table", o.LeaseTable}},
	} {
		if pair[0].name == pair[1].name {
			return nil, fmt.Errorf("postgresstore: the %s and the %s are both named %q; give them different names", pair[0].what, pair[1].what, pair[0].name)
		}
	}

	s := &Store{
		pool:      pool,
		sessions:  qualify(o.Schema, o.Table),
		chunks:    qualify(o.Schema, o.ChunkTable),
		versions:  qualify(o.Schema, o.VersionTable),
		leases:    qualify(o.Schema, o.LeaseTable),
		chunkSize: o.ChunkSize,
		keep:      o.Keep,
	}
	if !o.UsePoolExecMode {
		s.mode = []any{pgx.QueryExecModeExec}
	}
	q := &s.sql
	q.exists = `SELECT EXISTS (SELECT 1 FROM ` + s.sessions + ` WHERE session = $1)`
	// The upsert locks the session row (a new row is locked by its own insertion, with gen 0,
	// which no committed row has) until the transaction ends: concurrent Saves of one session
	// queue here. Once the lock is held, RETURNING sees the row as the last Save committed it,
	// and gives the new archive's generation: one more than the current one, or the server's
	// clock in microseconds since 1970 if that is later, so that a session deleted and saved
	// again does not reuse the IDs of its former archives.
	q.lock = `INSERT INTO ` + s.sessions + ` AS s (session, size, chunks, chunk_size, saved_at, gen)
		VALUES ($1, 0, 0, $2, clock_timestamp(), 0)
		ON CONFLICT (session) DO UPDATE SET gen = s.gen
		RETURNING greatest(s.gen + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)`
	// Statements of their own, after the lock: in READ COMMITTED each takes its snapshot once
	// the lock is held, so they see the rows of a Save that committed while this one waited.
	// keepPrevious describes the current archive, if any, in the version table; evict deletes
	// the descriptions beyond the newest $2 (Keep-1) and every chunk row of the session that
	// belongs to none of those that stay: the chunks of the current archive stay when it was
	// just kept, and with Keep 1 every chunk row of the session goes. Negative generations are
	// the provisional ones of a fenced Save's own chunks (lease.go), which are never committed.
	q.keepPrevious = `INSERT INTO ` + s.versions + ` (session, gen, size, chunks, chunk_size, saved_at)
		SELECT session, gen, size, chunks, chunk_size, saved_at FROM ` + s.sessions + ` WHERE session = $1 AND gen > 0`
	q.evict = `WITH kept AS (SELECT gen FROM ` + s.versions + ` WHERE session = $1 ORDER BY gen DESC LIMIT $2),
		gone AS (DELETE FROM ` + s.versions + ` WHERE session = $1 AND gen NOT IN (SELECT gen FROM kept))
		DELETE FROM ` + s.chunks + ` WHERE session = $1 AND gen >= 0 AND gen NOT IN (SELECT gen FROM kept)`
	q.copy = `COPY ` + s.chunks + ` (session, gen, seq, data) FROM STDIN (FORMAT binary)`
	q.finish = `UPDATE ` + s.sessions + ` SET gen = $2, size = $3, chunks = $4, chunk_size = $5, saved_at = clock_timestamp() WHERE session = $1`
	// The meta queries give the generation, the recorded size and chunk count, and the count,
	// total size and highest seq of the chunk rows. octet_length of an out-of-line bytea reads
	// its TOAST pointer, not its data.
	q.meta = `SELECT s.gen, s.size, s.chunks, count(c.seq), coalesce(sum(octet_length(c.data)), 0), coalesce(max(c.seq), -1)
		FROM ` + s.sessions + ` s LEFT JOIN ` + s.chunks + ` c ON c.session = s.session AND c.gen = s.gen
		WHERE s.session = $1 GROUP BY s.session`
	// The kept archives, newest first, at most Keep ($2): the current one, then the previous.
	kept := `SELECT gen, size, chunks, saved_at FROM ` + s.sessions + ` WHERE session = $1
		UNION ALL SELECT gen, size, chunks, saved_at FROM ` + s.versions + ` WHERE session = $1
		ORDER BY gen DESC LIMIT $2`
	q.versions = `SELECT gen, size, saved_at FROM (` + kept + `) k ORDER BY gen DESC`
	q.versionMeta = `SELECT k.gen, k.size, k.chunks, count(c.seq), coalesce(sum(octet_length(c.data)), 0), coalesce(max(c.seq), -1)
		FROM (` + kept + `) k LEFT JOIN ` + s.chunks + ` c ON c.session = $1 AND c.gen = k.gen
		WHERE k.gen = $3 GROUP BY k.gen, k.size, k.chunks`
	q.chunks = `SELECT seq, data FROM ` + s.chunks + ` WHERE session = $1 AND gen = $2 ORDER BY seq`
	q.delete = `DELETE FROM ` + s.sessions + ` WHERE session = $1`
	q.list = `SELECT session, size, saved_at FROM ` + s.sessions + ` ORDER BY session`
	s.leaseSQL()
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

// LeaseTableName returns the quoted, maybe schema-qualified name of the lease table, as it
// appears in the store's SQL, for example "wwebstore_sessions_leases" (with the double quotes).
func (s *Store) LeaseTableName() string { return s.leases }

// TableNames returns the quoted, maybe schema-qualified names of the session table, the chunk
// table and the version table, as they appear in the store's SQL, for example
// "wwebstore_sessions", "wwebstore_sessions_chunks" and "wwebstore_sessions_versions" (with the
// double quotes).
func (s *Store) TableNames() (sessions, chunks, versions string) {
	return s.sessions, s.chunks, s.versions
}

// CreateTablesSQL returns the SQL that creates the store's tables if they are missing, and
// upgrades tables made before the store kept history (see Upgrading in the package
// documentation): the statements that New runs when they are needed (without its lock and its
// checks), for a migration that prepares the tables ahead of time for a store used with
// SkipCreateTables. Running it again changes nothing; it needs to own the tables.
func (s *Store) CreateTablesSQL() string {
	var b strings.Builder
	for _, stmt := range [][]string{
		{createSessions(s.sessions)}, upgradeSessions(s.sessions),
		{createChunks(s.sessions, s.chunks), alterChunks(s.chunks)}, upgradeChunks(s.chunks),
		{createVersions(s.sessions, s.versions)},
		{createLeases(s.leases)},
	} {
		for _, q := range stmt {
			b.WriteString(q)
			b.WriteString(";\n")
		}
	}
	return b.String()
}

func createSessions(sessions string) string {
	return `CREATE TABLE IF NOT EXISTS ` + sessions + ` (
	session    text COLLATE "C" PRIMARY KEY,
	size       bigint NOT NULL CHECK (size >= 0),
	chunks     integer NOT NULL CHECK (chunks >= 0),
	chunk_size integer NOT NULL CHECK (chunk_size > 0),
	saved_at   timestamptz NOT NULL,
	gen        bigint NOT NULL CHECK (gen >= 0)
)`
}

func createChunks(sessions, chunks string) string {
	return `CREATE TABLE IF NOT EXISTS ` + chunks + ` (
	session text COLLATE "C" NOT NULL REFERENCES ` + sessions + ` (session) ON DELETE CASCADE,
	seq     integer NOT NULL CHECK (seq >= 0),
	data    bytea NOT NULL,
	gen     bigint NOT NULL,
	PRIMARY KEY (session, gen, seq)
)`
}

// alterChunks keeps chunk data out of line and uncompressed. PostgreSQL 16 could say it in
// CREATE TABLE; ALTER TABLE works from 9.x on.
func alterChunks(chunks string) string {
	return `ALTER TABLE ` + chunks + ` ALTER COLUMN data SET STORAGE EXTERNAL`
}

func createVersions(sessions, versions string) string {
	return `CREATE TABLE IF NOT EXISTS ` + versions + ` (
	session    text COLLATE "C" NOT NULL REFERENCES ` + sessions + ` (session) ON DELETE CASCADE,
	gen        bigint NOT NULL CHECK (gen > 0),
	size       bigint NOT NULL CHECK (size >= 0),
	chunks     integer NOT NULL CHECK (chunks >= 0),
	chunk_size integer NOT NULL CHECK (chunk_size > 0),
	saved_at   timestamptz NOT NULL,
	PRIMARY KEY (session, gen)
)`
}

// legacyGen is the generation that the upgrade gives the archives saved before the store kept
// history: their session rows and chunk rows get gen 1, so that each stays whole and current.
const legacyGen = "1"

// upgradeSessions adds the gen column to a session table made before the store kept history.
// The default fills the rows that exist (without rewriting the table, from PostgreSQL 11 on)
// and is dropped at once, so that an older version of the store, which does not write gen,
// fails to save rather than write rows that this one would misread.
func upgradeSessions(sessions string) []string {
	return []string{
		`ALTER TABLE ` + sessions + ` ADD COLUMN IF NOT EXISTS gen bigint NOT NULL DEFAULT ` + legacyGen + ` CHECK (gen >= 0)`,
		`ALTER TABLE ` + sessions + ` ALTER COLUMN gen DROP DEFAULT`,
	}
}

// chunksPrimaryKey is the primary key of the chunk table, as pg_get_constraintdef writes it.
const chunksPrimaryKey = "PRIMARY KEY (session, gen, seq)"

// upgradeChunks adds the gen column to a chunk table made before the store kept history, as
// upgradeSessions does, and replaces its primary key (session, seq) with (session, gen, seq). The
// key's name is the server's choice, so a DO block looks it up.
func upgradeChunks(chunks string) []string {
	name := "'" + strings.ReplaceAll(chunks, "'", "''") + "'"
	body := `
DECLARE
	pk  name;
	def text;
BEGIN
	SELECT conname, pg_get_constraintdef(oid) INTO pk, def FROM pg_constraint
		WHERE conrelid = ` + name + `::regclass AND contype = 'p';
	IF def IS DISTINCT FROM '` + chunksPrimaryKey + `' THEN
		EXECUTE format('ALTER TABLE %s %s ADD ` + chunksPrimaryKey + `', ` + name + `::regclass,
			CASE WHEN pk IS NULL THEN '' ELSE format('DROP CONSTRAINT %I,', pk) END);
	END IF;
END
`
	tag := "$wwebstore$"
	for i := 0; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$wwebstore%d$", i)
	}
	return []string{
		`ALTER TABLE ` + chunks + ` ADD COLUMN IF NOT EXISTS gen bigint NOT NULL DEFAULT ` + legacyGen,
		`ALTER TABLE ` + chunks + ` ALTER COLUMN gen DROP DEFAULT`,
		`DO ` + tag + body + tag,
	}
}

// createTables creates the tables that are missing and upgrades those made before the store
// kept history. Concurrent CREATE TABLE IF NOT EXISTS of one table can fail on PostgreSQL's
// catalog indexes, so creators take a transaction-scoped advisory lock on a hash of the session
// table's name first. Tables that exist and need no upgrade are left alone, so a role without
// the CREATE privilege, or that does not own the tables, can use tables made by a migration.
func (s *Store) createTables(ctx context.Context) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.args("wwebstore/postgresstore create "+s.sessions)...); err != nil {
			return err
		}
		var haveSessions, haveChunks, haveVersions, haveLeases, sessionsGen, chunksGen, chunksKey bool
		err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL, to_regclass($5) IS NOT NULL,
			EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'gen' AND NOT attisdropped),
			EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($2) AND attname = 'gen' AND NOT attisdropped),
			EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($2) AND contype = 'p' AND pg_get_constraintdef(oid) = $4)`,
			s.args(s.sessions, s.chunks, s.versions, chunksPrimaryKey, s.leases)...).Scan(&haveSessions, &haveChunks, &haveVersions, &haveLeases, &sessionsGen, &chunksGen, &chunksKey)
		if err != nil {
			return err
		}
		var stmts []string
		switch {
		case !haveSessions:
			stmts = append(stmts, createSessions(s.sessions))
		case !sessionsGen:
			stmts = append(stmts, upgradeSessions(s.sessions)...)
		}
		switch {
		case !haveChunks:
			stmts = append(stmts, createChunks(s.sessions, s.chunks), alterChunks(s.chunks))
		case !chunksGen || !chunksKey:
			stmts = append(stmts, upgradeChunks(s.chunks)...)
		}
		if !haveVersions {
			stmts = append(stmts, createVersions(s.sessions, s.versions))
		}
		if !haveLeases {
			stmts = append(stmts, createLeases(s.leases))
		}
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
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
// previous one in one transaction (see the package documentation), which also keeps the previous
// archive and evicts those beyond Options.Keep. If r fails, ctx ends or the server fails, Save
// returns an error wrapping the cause, and the previous archive, or its absence, stays as it
// was, as do the kept ones. r is never read after Save returns.
//
// If the connection is lost while the COMMIT is on its way, the outcome cannot be known: Save
// returns an error, and the session holds either archive, whole.
func (s *Store) Save(ctx context.Context, session string, r io.Reader) error {
	if err := s.begin(ctx, "save", session); err != nil {
		return err
	}
	if err := s.save(ctx, session, r, nil); err != nil {
		return opError(ctx, "save", session, err)
	}
	return nil
}

func (s *Store) save(ctx context.Context, session string, r io.Reader, l *lease) (err error) {
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
	// A Save locks the session row first, and streams the chunks under the new generation. A
	// fenced Save (l != nil) locks it only after streaming its chunks under a provisional
	// generation, so that a stale holder's upload never holds the row that the newer holder's
	// Saves need (see Leases in the package documentation).
	var gen, copyGen int64
	if l == nil {
		if gen, err = s.lockRow(ctx, tx, session, nil); err != nil {
			return err
		}
		copyGen = gen
	} else if err := tx.QueryRow(ctx, s.sql.ensureRow, s.args(session, s.chunkSize)...).Scan(&copyGen); err != nil {
		return fmt.Errorf("making sure the session row exists: %w", err)
	}
	src := newCopySource(session, copyGen, remoteauth.ContextReader(ctx, r), s.chunkSize)
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
	if l != nil {
		if gen, err = s.lockRow(ctx, tx, session, l); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, s.sql.renumber, s.args(session, gen, copyGen)...)
		if err != nil {
			return fmt.Errorf("giving the chunks their generation: %w", err)
		}
		if tag.RowsAffected() != chunks {
			return fmt.Errorf("%d chunks were given their generation, %d were copied", tag.RowsAffected(), chunks)
		}
	}
	if _, err := tx.Exec(ctx, s.sql.finish, s.args(session, gen, size, chunks, s.chunkSize)...); err != nil {
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

// lockRow locks session's row in tx (upserting it) and returns the new archive's generation;
// under a lease l, it then checks l (lease.fence), which blocks any newer grant until tx ends;
// then it keeps the current archive as a previous one, and evicts beyond Options.Keep.
func (s *Store) lockRow(ctx context.Context, tx pgx.Tx, session string, l *lease) (int64, error) {
	var gen int64
	if err := tx.QueryRow(ctx, s.sql.lock, s.args(session, s.chunkSize)...).Scan(&gen); err != nil {
		return 0, fmt.Errorf("locking the session row: %w", err)
	}
	if l != nil {
		if err := l.fence(ctx, tx); err != nil {
			return 0, err
		}
	}
	if s.keep > 1 {
		if _, err := tx.Exec(ctx, s.sql.keepPrevious, s.args(session)...); err != nil {
			return 0, fmt.Errorf("keeping the previous archive: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, s.sql.evict, s.args(session, s.keep-1)...); err != nil {
		return 0, fmt.Errorf("evicting the archives beyond %d: %w", s.keep, err)
	}
	return gen, nil
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
	if err := s.extract(ctx, session, w, "no row in "+s.sessions, s.sql.meta, session); err != nil {
		return opError(ctx, "extract", session, err)
	}
	return nil
}

// extract writes an archive of session to w, within one REPEATABLE READ snapshot: meta (with
// args) gives the archive's generation, recorded size and chunk count, and the count, total size
// and highest seq of its chunk rows, or no row when there is no such archive, which is
// ErrNotFound described by missing.
func (s *Store) extract(ctx context.Context, session string, w io.Writer, missing, meta string, args ...any) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("beginning the transaction: %w", err)
	}
	// Read-only: rolling back is how it ends, after a success as after a failure.
	defer rollback(ctx, tx)

	var gen, size, chunks, rows, total, last int64
	err = tx.QueryRow(ctx, meta, s.args(args...)...).Scan(&gen, &size, &chunks, &rows, &total, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s", remoteauth.ErrNotFound, missing)
	}
	if err != nil {
		return fmt.Errorf("reading the archive's description: %w", err)
	}
	// seq is unique within a generation and never negative, so count = max+1 = chunks means
	// exactly 0…chunks-1.
	if rows != chunks || last != chunks-1 || total != size {
		return fmt.Errorf("%w: archive %d is recorded as %d bytes in %d chunks, %s holds %d bytes in %d chunks numbered up to %d",
			remoteauth.ErrCorruptArchive, gen, size, chunks, s.chunks, total, rows, last)
	}
	if chunks == 0 {
		return nil
	}

	// The chunks go through pgconn: one round trip with the unnamed statement, binary results
	// whatever the exec mode (pgx's exec mode would send bytea as hex text), and each row's data
	// is written to w straight from pgx's read buffer.
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	params := [][]byte{[]byte(session), strconv.AppendInt(nil, gen, 10)}
	rr := tx.Conn().PgConn().ExecParams(qctx, s.sql.chunks, params, []uint32{textOID, int8OID}, nil, []int16{binaryFormat, binaryFormat})
	var next, written int64
	for rr.NextRow() {
		v := rr.Values()
		if len(v) != 2 || len(v[0]) != 4 {
			rr.Close()
			return fmt.Errorf("chunk %d: unexpected row of %d columns from %s", next, len(v), s.chunks)
		}
		if seq := int64(int32(binary.BigEndian.Uint32(v[0]))); seq != next {
			rr.Close()
			return fmt.Errorf("%w: chunk %d of %d of archive %d is missing from %s (next is %d)", remoteauth.ErrCorruptArchive, next, chunks, gen, s.chunks, seq)
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
		return fmt.Errorf("%w: read %d bytes in %d chunks of archive %d, recorded as %d bytes in %d chunks",
			remoteauth.ErrCorruptArchive, written, next, gen, size, chunks)
	}
	return nil
}

// Delete removes session's archive and every kept one: its session row and, through the foreign
// keys, its chunks and version rows.
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

// List returns the sessions that have an archive, sorted by name (byte order: the "C" collation),
// with their sizes and the times their Saves finished writing (saved_at). It reads the session
// table in one query; the row of a Save in progress is not visible until it commits. Session
// names that are not valid (a row written by hand) are skipped. It implements remoteauth.Lister.
func (s *Store) List(ctx context.Context) ([]remoteauth.SessionInfo, error) {
	fail := func(err error) ([]remoteauth.SessionInfo, error) {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return nil, fmt.Errorf("postgresstore: list sessions in %s: %w", s.sessions, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	rows, err := s.pool.Query(ctx, s.sql.list, s.args()...)
	if err != nil {
		return fail(err)
	}
	var (
		list []remoteauth.SessionInfo
		info remoteauth.SessionInfo
	)
	_, err = pgx.ForEachRow(rows, []any{&info.Name, &info.Size, &info.Saved}, func() error {
		if remoteauth.ValidateSessionName(info.Name) == nil {
			list = append(list, info)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return list, nil
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
	int8OID      = 20 // pgtype.Int8OID
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
	gen     int64
	buf     []byte // the chunk buffer, len = chunk size
	head    []byte // bytes to send before body: the file header, a tuple header or the trailer
	body    []byte // chunk bytes still to send
	hbuf    []byte // storage of head

	started, eof, trailed, closed bool
	chunks, size                  int64
	err                           error // r's error, not io.EOF
}

func newCopySource(session string, gen int64, r io.Reader, chunkSize int) *copySource {
	return &copySource{r: r, session: session, gen: gen, buf: make([]byte, chunkSize), hbuf: make([]byte, 0, 64+len(session))}
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
		h := binary.BigEndian.AppendUint16(c.hbuf[:0], 4) // fields: session, gen, seq, data
		h = binary.BigEndian.AppendUint32(h, uint32(len(c.session)))
		h = append(h, c.session...)
		h = binary.BigEndian.AppendUint32(h, 8)
		h = binary.BigEndian.AppendUint64(h, uint64(c.gen))
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
