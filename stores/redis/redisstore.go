// Package redisstore is a [remoteauth.Store] that keeps session archives in Redis: a single node,
// a Sentinel-managed primary (redis.NewFailoverClient) or a Redis Cluster. It takes any
// redis.UniversalClient of github.com/redis/go-redis/v9:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	st, err := redisstore.New(ctx, rdb, nil) // nil options: the defaults
//
// An archive is split into chunks of at most Options.ChunkSize bytes (1 MiB by default), so that
// no Redis value is ever larger than that, and Save and Extract stream: each holds a few chunks
// in memory, never the whole archive.
//
// # Data layout
//
// All the keys of a session start with the key prefix (Options.KeyPrefix, "wwebstore:" by
// default) and the session name in braces, which Redis Cluster takes as the hash tag: every key
// of a session is in one slot, so that one Lua script or MULTI/EXEC transaction can change them
// together. For session "RemoteAuth-alice":
//
//	wwebstore:{RemoteAuth-alice}:meta              hash: the current archive
//	    gen         generation id: 16 hex digits, new for each Save
//	    chunks      number of chunks
//	    size        archive size in bytes
//	    chunk_size  size of every chunk but the last (the ChunkSize of the Save that wrote it)
//	    saved_ms    when the Save committed, Unix milliseconds (server clock)
//	wwebstore:{RemoteAuth-alice}:chunk:<gen>:<i>   string: chunk i (from 0) of generation gen
//	wwebstore:{RemoteAuth-alice}:history           list: the archives kept before the current
//	                                               one, newest first (see History), each
//	                                               "<gen>:<chunks>:<size>:<chunk_size>:<saved_ms>"
//	wwebstore:{RemoteAuth-alice}:saves             hash: Saves in progress, gen → number of
//	                                               chunk slots written so far
//	wwebstore:{RemoteAuth-alice}:readers           sorted set: Extract leases, "<gen>:<id>"
//	                                               scored by their expiry (Unix ms)
//	wwebstore:{RemoteAuth-alice}:lease             hash: the writer lease (see Leases): token,
//	                                               owner, expires_ms, released; no expiry
//
// A session exists when its meta key does. Session names are case-sensitive and contain no
// brace, so sessions never share a key ("a" and "a-b" are {a} and {a-b}); the key prefix must not
// contain a brace either. Between operations, a session has its meta key, the chunks of its
// current generation, and, with Options.Keep above 1, its history list and the chunks of the
// generations it lists, its lease hash if it was ever leased, and nothing else: the saves and readers keys exist while Saves and
// Extracts run, and otherwise expire within a minute of their last use. The current archive is
// where it was before the store kept history, so archives written by earlier versions are read
// as they are: no migration is needed.
//
// # Saving
//
// Save writes the archive under a new generation id, then switches the session to it in one Lua
// script, so that Extract and SessionExists see the previous archive or the new one, whole:
//
//  1. It registers the generation in the saves hash.
//  2. It reads r in chunks of ChunkSize bytes and writes them four to a MULTI/EXEC transaction,
//     with at most eight chunks in memory (a transaction in flight while the next one fills).
//     Each transaction SETs its chunks with an expiry of one minute, then runs a small script
//     that raises the generation's count of chunk slots, or, if the generation is no longer
//     registered, deletes the chunks again: no chunk of a generation can appear after the
//     generation's chunks were deleted. The chunks' bytes go to SET, never through Lua.
//  3. A heartbeat renews the expiry of the registration and of the chunks every 15 seconds.
//  4. Once r has been read to its end, and if ctx has not ended, the commit script checks that
//     every chunk is there, removes their expiry (or sets Options.TTL), points the meta key to
//     the new generation, and keeps the previous one in the history list or retires it (see
//     History and Extracting).
//
// A Save that fails (r returns an error, ctx ends, the connection breaks) deletes its chunks and
// its registration with a fresh context of a few seconds, and leaves the previous archive as it
// was. When that cleanup cannot reach the server either, or the process dies, the next Save of
// the session removes what is left: its commit deletes the chunks of every other registered
// generation (the count of chunk slots says which keys may exist) and their registrations. Should
// no other Save of the session come, the chunks and the registration expire within a minute.
//
// Concurrent Saves of one session all succeed. With Options.Keep above 1, those that one Store
// runs all commit, one after the other in the order they complete, and each is kept (a commit
// spares the registrations of its own Store's other Saves). Otherwise (Keep 1, or Saves of
// different Stores: processes), the first to commit wins and, as above, deletes the others'
// chunks and registrations. A Save that finds its registration gone (at a chunk
// transaction, a heartbeat or its commit) at a time when, by its own monotonic clock, the
// registration cannot have expired (less than 45 seconds after it last renewed it), knows that a
// commit or a Delete ran during it: it was overtaken. It stops writing, reads r to its end and
// returns nil, as if it had committed just before the winner: the two overlapped, so either
// order is correct. A Delete overtakes Saves in progress the same way. A Save whose registration
// may have expired (no heartbeat reached the server for 45 seconds) fails instead.
//
// Once r is read to its end and ctx is live, the commit is not interrupted by ctx: it is one
// round trip, and its outcome must be known. A network failure during that round trip leaves the
// outcome unknown, and Save returns the error; a retried commit of a generation that is already
// the session's archive is recognised as done.
//
// # Extracting
//
// Extract reads the meta key and, in the same script, takes a lease on its generation: an entry
// in the readers set, which a heartbeat renews every 15 seconds and which expires after a minute
// without. Then it reads the chunks with GET, four ahead of the one it writes to w, in order,
// checking the length of each. When a commit or a Delete retires a generation that a lease
// holds, its chunks are not deleted but set to expire with the last lease, and the heartbeat
// keeps the chunks not yet read alive as long as the lease; an Extract that ends deletes the
// retired chunks if no other lease holds them. So an Extract racing Saves reads one archive,
// whole, however slow w is.
//
// Should an Extract find a chunk missing anyway (its lease was lost because no heartbeat reached
// the server for a minute, or it read a replica that lags), it starts again if it has written
// nothing yet, up to three times; once bytes are written it cannot take them back, and it returns
// an error. It never returns nil after writing a partial or mixed archive.
//
// # History
//
// A Store implements [remoteauth.History]: it keeps the last Options.Keep archives of each
// session (remoteauth.DefaultKeep, 2, by default: the current one and the one before it). An
// archive's ID is its generation, 16 hex digits, which does not change when it is kept. A commit
// pushes the archive it replaces, chunks untouched, onto the head of the session's history list
// and, in the same script, retires the entries beyond Keep-1 (their chunks are deleted, or
// expire with the last Extract lease on them) and gives the kept chunks and the list the new
// archive's expiry: Options.TTL, or none. So a session's archives expire together, and a store
// reopened without TTL makes them persistent again. With Keep 1 a commit retires the previous
// archive and deletes the history list it finds; a store reopened with a smaller Keep lists that
// many at once, and its next commit evicts the rest.
//
// A Save that fails never reaches the commit, so it neither adds nor evicts a kept archive.
// Delete removes the history list and every kept archive in the script that deletes the meta
// key; a session whose meta key is gone (deleted, or expired) lists no archives, and its next
// commit deletes any history list left. Versions reads the meta key and the list in one
// MULTI/EXEC; ExtractVersion takes the same reader lease as Extract on the kept generation, so an
// eviction during it deletes the chunks only once it ends. A Save overtaken by a Save of another
// Store (see Saving) is not kept: it is ordered just before the winner, which replaced it.
//
// Versions of the store older than History read and write the current archive as before, but
// keep nothing: during a rolling upgrade, their commits retire the archive they replace instead
// of keeping it, their Deletes leave the history list and its archives (listed by none, and
// removed by this version's next Save or Delete of the session), and their Extracts, on ending, may delete the chunks of a kept
// generation that they read after it was kept (ExtractVersion of it then fails with a missing
// chunk). Run one version once the upgrade is done.
//
// # Leases
//
// A Store implements [remoteauth.Leaser]. A session's lease is its lease hash: the newest token
// granted (never lowered), its owner, its expiry (Unix ms, the server's clock) and whether it was
// released. AcquireLease, Renew and Release are Lua scripts that read the server's clock (TIME),
// so expiry does not depend on the writers' clocks, and concurrent AcquireLease calls of any
// number of processes grant one lease. The hash has no expiry, and neither Delete nor an
// archive's TTL removes it, so tokens never go back. (SET NX PX alone would forget the token when
// the key expires, and could not tell a lease that expired but was not taken over, which may still
// write, from a superseded one.)
//
// Fencing is atomic: a Lease's Save runs the commit script with the lease key and its token,
// and the script checks, before it writes anything, that the token is still the newest and not
// released, then switches the meta key in the same script. A lost lease's commit deletes its
// chunks and fails with an error wrapping remoteauth.ErrLeaseLost; a Lease's Save overtaken by
// another Store's commit fails so too when its lease is lost (and returns nil, as Store.Save, only
// when it is not). A Lease's Delete is the delete script with the same check first. Redis
// replication is asynchronous: a failover to a replica that missed the last lease script can grant
// a lease again or accept a stale commit, which no script can prevent.
//
// # Errors
//
// Every error names "redisstore", the operation and the session, and wraps the cause with %w: a
// go-redis error (a redis.Error for a server reply such as OOM, a *net.OpError or io.EOF for a
// broken connection), ctx's error, r's or w's. Extract of a missing session wraps
// remoteauth.ErrNotFound and writes nothing. An invalid session name gives an error wrapping
// remoteauth.ErrInvalidSession before any command is sent. A cancelled ctx gives an error
// wrapping ctx.Err() before any command is sent.
//
// # Server requirements and limits
//
//   - Lua scripting (EVAL, EVALSHA) and MULTI/EXEC. The scripts call TIME before writing, which
//     needs Redis 5 or later; CLUSTER and multi-field HSET as in Redis 4. Tested with Redis 7.0,
//     a single node and a cluster of three primaries. Some managed services disable Lua: there
//     the store cannot work.
//   - A maxmemory-policy that never evicts archives: noeviction, Redis's default. Under
//     volatile-* policies, Redis may evict the keys of an archive that has a TTL or of a Save in
//     progress; under allkeys-* policies, any archive.
//   - The expiries of Saves in progress and of Extract leases count on the server's clock: a
//     server clock that jumps forward by 15 seconds or more during a Save can make its
//     registration expire while the Save thinks it cannot, and the Save then returns nil without
//     having replaced the archive.
//   - Reads from replicas (ClusterOptions.ReadOnly, RouteByLatency, RouteRandomly;
//     FailoverOptions.ReplicaOnly) may miss a chunk that the primary has; Extract then retries
//     or fails, and never writes a wrong archive. Read from primaries.
//   - The commit and Delete scripts touch every chunk of the archive and of the kept ones, a few
//     microseconds each, during which the server runs nothing else: with 1 MiB chunks, a 1 GiB
//     archive has 1,024. Options.Keep is at most MaxKeep (100).
//   - The server holds Options.Keep archives of each session, and during a Save one more.
//   - Memory in the process: a Save holds at most eight chunks (8 MiB by default) and an Extract
//     about six, plus go-redis's buffers; the Go heap grows by more until the garbage collector
//     runs (9 MiB saving and up to 21 MiB extracting 256 MiB, measured: see the README).
//
// # URLs
//
// Importing redisstore registers the "redis" and "rediss" (TLS) schemes with
// [remoteauth.OpenStore]. The URL is go-redis's, with a few parameters of the store's own:
//
//	redis://[[user]:password@]host[:port][/db][?param=value&…]
//	rediss://…                              TLS; the host name is checked (skip_verify=true not to)
//
//	prefix=app:sessions:    Options.KeyPrefix, percent-encoded if need be (default "wwebstore:")
//	chunk_size=1048576      Options.ChunkSize, in bytes (default 1 MiB)
//	ttl=720h                Options.TTL, a Go duration or a number of seconds (default: none)
//	keep=3                  Options.Keep, archives kept per session, 1 to 100 (default 2)
//	cluster=true            a Redis Cluster: host is a seed node; more seeds with addr=host:port
//	master_name=mymaster    a Sentinel-managed primary: host and each addr=host:port are
//	                        Sentinels, the user info is the Sentinels' credentials, and the
//	                        primary's go in the parameters username and password
//
// Any other parameter goes to go-redis (dial_timeout=3s, pool_size=20, protocol=2, …): see
// redis.ParseURL, redis.ParseClusterURL and redis.ParseFailoverURL. An unknown parameter is an
// error. Errors that quote the URL hide its passwords. The Store that OpenStore returns owns the client it made: close it, through io.Closer,
// when done; Close of a Store made by New leaves the caller's client open.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Defaults and limits of Options.
const (
	DefaultKeyPrefix = "wwebstore:"
	DefaultChunkSize = 1 << 20  // 1 MiB
	MinChunkSize     = 1 << 10  // 1 KiB: smaller chunks only multiply keys and round trips
	MaxChunkSize     = 64 << 20 // 64 MiB: a larger value blocks the server for too long
	MinTTL           = time.Second
	// MaxKeep is the largest Options.Keep: a commit walks every chunk of every kept archive.
	MaxKeep = 100
)

const (
	// defaultLease is how long the chunks and registration of a pending Save, and an Extract's
	// lease, live without a heartbeat; heartbeats come every quarter of it. Tests shorten it.
	defaultLease = time.Minute
	// cleanupTimeout bounds the commit, the cleanup of a failed Save and the end of an Extract,
	// which run on a context of their own.
	cleanupTimeout  = 10 * time.Second
	putBatch        = 4 // chunks a Save writes in one transaction
	saveBuffers     = 8 // chunks a Save holds: a batch in flight while the next one fills
	extractAhead    = 4 // chunks an Extract reads ahead of the one it writes
	extractAttempts = 3 // times an Extract starts again when it finds a chunk missing before writing
)

// Options configures a Store. The zero value, like a nil *Options, means the defaults.
type Options struct {
	// KeyPrefix starts every key of the store; "" means DefaultKeyPrefix ("wwebstore:"). Stores
	// with different prefixes on one server do not see each other's sessions. It must not
	// contain '{' or '}', which would change the keys' hash tag.
	KeyPrefix string

	// ChunkSize is the largest value the store writes: archives are split into chunks of this
	// many bytes (the last one shorter). 0 means DefaultChunkSize (1 MiB); otherwise it must be
	// between MinChunkSize (1 KiB) and MaxChunkSize (64 MiB). Archives written with another
	// chunk size stay readable: each records its own.
	ChunkSize int

	// TTL, if positive, makes an archive expire when it has not been saved for that long:
	// every Save sets it again; Extract and SessionExists do not. It must be 0 (archives never
	// expire) or at least MinTTL (one second). The kept archives (Keep) follow the current
	// one: every commit gives them its expiry, so a session's archives expire together.
	TTL time.Duration

	// Keep is how many archives of each session the store keeps, the current one included (see
	// remoteauth.History and the package documentation, History). 0 means
	// remoteauth.DefaultKeep (2: the current archive and the one before it); 1 keeps no history
	// (and a Save removes the history it finds); at most MaxKeep (100). Each kept archive takes
	// its size in the server's memory.
	Keep int
}

// Store is a remoteauth.Store that keeps archives in Redis. It is safe for concurrent use, also
// by several processes sharing a server and key prefix.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	chunkSize int
	ttl       time.Duration
	keep      int // archives kept per session, at least 1
	lease     time.Duration
	// pending holds, for each session (by its saves key), the generations of the Saves that
	// this Store runs: with keep above 1, a commit spares them, so that they commit in turn
	// and are kept (see the package documentation, History).
	pendingMu sync.Mutex
	pending   map[string]map[string]bool
	owned     bool // the client was made by OpenStore, and Close closes it
	closeOnce sync.Once
	closeErr  error
}

var (
	_ remoteauth.Store   = (*Store)(nil)
	_ remoteauth.Lister  = (*Store)(nil)
	_ remoteauth.History = (*Store)(nil)
	_ io.Closer          = (*Store)(nil)
)

// New returns a Store that keeps archives through rdb, and checks that the server answers a
// PING within ctx. A nil opts means the defaults. The caller keeps ownership of rdb: closing
// the Store does not close it.
func New(ctx context.Context, rdb redis.UniversalClient, opts *Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: New: no client given")
	}
	s := &Store{rdb: rdb, prefix: DefaultKeyPrefix, chunkSize: DefaultChunkSize, keep: remoteauth.DefaultKeep,
		lease: defaultLease, pending: map[string]map[string]bool{}}
	if opts != nil {
		if err := opts.validate(); err != nil {
			return nil, err
		}
		if opts.KeyPrefix != "" {
			s.prefix = opts.KeyPrefix
		}
		if opts.ChunkSize != 0 {
			s.chunkSize = opts.ChunkSize
		}
		s.ttl = opts.TTL
		if opts.Keep != 0 {
			s.keep = opts.Keep
		}
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redisstore: New: PING: %w", err)
	}
	return s, nil
}

func (o *Options) validate() error {
	switch {
	case strings.ContainsAny(o.KeyPrefix, "{}"):
		return fmt.Errorf("redisstore: key prefix %q contains a brace, which would change the keys' Redis Cluster hash tag", o.KeyPrefix)
	case o.ChunkSize != 0 && (o.ChunkSize < MinChunkSize || o.ChunkSize > MaxChunkSize):
		return fmt.Errorf("redisstore: chunk size %d is not between %d (1 KiB) and %d (64 MiB)", o.ChunkSize, MinChunkSize, MaxChunkSize)
	case o.TTL < 0:
		return fmt.Errorf("redisstore: TTL %v is negative (0 means no expiry)", o.TTL)
	case o.TTL > 0 && o.TTL < MinTTL:
		return fmt.Errorf("redisstore: TTL %v is less than %v (0 means no expiry)", o.TTL, MinTTL)
	case o.Keep < 0 || o.Keep > MaxKeep:
		return fmt.Errorf("redisstore: Keep %d is not between 1 (no history) and %d (0 means the default, %d)", o.Keep, MaxKeep, remoteauth.DefaultKeep)
	}
	return nil
}

// Close closes the client if the Store made it (OpenStore), and does nothing otherwise: a
// client given to New belongs to the caller. It is safe to call more than once.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	s.closeOnce.Do(func() {
		if err := s.rdb.Close(); err != nil {
			s.closeErr = fmt.Errorf("redisstore: close: %w", err)
		}
	})
	return s.closeErr
}

// keys are the names of one session's keys.
type keys struct {
	meta, saves, readers, history string
	lease                         string // the lease hash (see Leaser)
	chunkBase                     string // + gen + ":" + index
}

func (s *Store) keys(session string) keys {
	tag := s.prefix + "{" + session + "}:"
	return keys{
		meta:      tag + "meta",
		saves:     tag + "saves",
		readers:   tag + "readers",
		history:   tag + "history",
		lease:     tag + "lease",
		chunkBase: tag + "chunk:",
	}
}

func (k keys) chunk(gen string, i int) string { return k.chunkBase + gen + ":" + strconv.Itoa(i) }

// begin checks the arguments common to every method, the session name and then ctx, and returns
// the session's keys.
func (s *Store) begin(ctx context.Context, op, session string) (keys, error) {
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return keys{}, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return keys{}, opError(op, session, err)
	}
	return s.keys(session), nil
}

func opError(op, session string, err error) error {
	return fmt.Errorf("redisstore: %s session %q: %w", op, session, err)
}

// SessionExists reports whether session has an archive: whether its meta key exists.
func (s *Store) SessionExists(ctx context.Context, session string) (bool, error) {
	k, err := s.begin(ctx, "check", session)
	if err != nil {
		return false, err
	}
	n, err := s.rdb.Exists(ctx, k.meta).Result()
	if err != nil {
		return false, opError("check", session, err)
	}
	return n == 1, nil
}

// Delete removes session's archive and every archive kept before it, and overtakes the session's Saves in progress (they return
// nil and leave nothing). An Extract already reading the archive finishes it. Deleting a session
// without an archive returns nil.
func (s *Store) Delete(ctx context.Context, session string) error {
	k, err := s.begin(ctx, "delete", session)
	if err != nil {
		return err
	}
	return s.delete(ctx, session, k, 0)
}

// delete is Delete of session, fenced by lease token (0: unfenced) as save is.
func (s *Store) delete(ctx context.Context, session string, k keys, token uint64) error {
	res, err := deleteScript.Run(ctx, s.rdb, []string{k.meta, k.saves, k.readers, k.history, k.lease}, k.chunkBase, token).Int()
	if err != nil {
		return opError("delete", session, withCtxErr(ctx, err))
	}
	if res == -2 {
		return opError("delete", session, lostError(token))
	}
	return nil
}

// listScanCount is the COUNT hint of List's SCAN calls: keys examined per round trip.
const listScanCount = 1000

// List returns the sessions that have an archive, sorted by name, with their sizes and the times
// of their Saves (saved_ms, the server's clock). It SCANs the keyspace for the store's meta keys
// (on every primary of a Redis Cluster), which examines every key of the database in batches
// without blocking the server, then reads the size and time of each session in one pipeline.
// Keys of other key prefixes are not listed. It implements remoteauth.Lister.
func (s *Store) List(ctx context.Context) ([]remoteauth.SessionInfo, error) {
	fail := func(err error) ([]remoteauth.SessionInfo, error) {
		return nil, fmt.Errorf("redisstore: list sessions: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	pattern := globEscape(s.prefix) + "{*}:meta"
	var (
		mu    sync.Mutex
		names = map[string]bool{}
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, listScanCount).Iterator()
		for iter.Next(ctx) {
			if name, ok := s.sessionOfMeta(iter.Val()); ok {
				mu.Lock()
				names[name] = true // SCAN may return a key twice
				mu.Unlock()
			}
		}
		return iter.Err()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.rdb)
	}
	if err != nil {
		return fail(withCtxErr(ctx, err))
	}
	sorted := slices.Sorted(maps.Keys(names))
	cmds := make([]*redis.SliceCmd, len(sorted))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range sorted {
			cmds[i] = p.HMGet(ctx, s.keys(name).meta, "size", "saved_ms")
		}
		return nil
	})
	if err != nil {
		return fail(withCtxErr(ctx, err))
	}
	list := make([]remoteauth.SessionInfo, 0, len(sorted))
	for i, name := range sorted {
		vals := cmds[i].Val()
		size, ok1 := vals[0].(string)
		saved, ok2 := vals[1].(string)
		if !ok1 || !ok2 {
			continue // deleted since the SCAN
		}
		n, err1 := strconv.ParseInt(size, 10, 64)
		ms, err2 := strconv.ParseInt(saved, 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return fail(fmt.Errorf("session %q: %w: meta: %w", name, errBadArchive, err))
		}
		list = append(list, remoteauth.SessionInfo{Name: name, Size: n, Saved: time.UnixMilli(ms)})
	}
	return list, nil
}

// sessionOfMeta returns the session whose meta key is key, and false if key is not the meta key
// of a valid session name under the store's prefix.
func (s *Store) sessionOfMeta(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+"{")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, "}:meta")
	if !ok || remoteauth.ValidateSessionName(name) != nil {
		return "", false
	}
	return name, true
}

// globEscape escapes the characters that SCAN's MATCH pattern gives a meaning to.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Save reads r to its end and makes what it read session's archive, replacing the previous one
// atomically (see the package documentation). If r fails, ctx ends or the server cannot be
// reached, Save returns an error wrapping the cause and leaves the previous archive (or its
// absence) as it was. A Save overtaken by a concurrent Save or Delete of the session reads r to
// its end and returns nil (or r's error).
func (s *Store) Save(ctx context.Context, session string, r io.Reader) error {
	k, err := s.begin(ctx, "save", session)
	if err != nil {
		return err
	}
	if err := s.save(ctx, k, r, 0); err != nil {
		return opError("save", session, withCtxErr(ctx, err))
	}
	return nil
}

// Errors of Save and Extract that are not the server's, r's, w's or ctx's.
var (
	errRegistrationExpired = errors.New("the Save's registration expired: no heartbeat reached the server in time")
	errChunkMissing        = errors.New("a chunk of the archive is missing")
	errBadArchive          = errors.New("the archive's keys are inconsistent")
)

// save is Save of the session of k, fenced by lease token (0: unfenced, a Store.Save): the
// commit script makes the archive current only if token is still the session's newest lease and
// not released, and otherwise returns an error wrapping remoteauth.ErrLeaseLost.
func (s *Store) save(ctx context.Context, k keys, r io.Reader, token uint64) (err error) {
	gen := newID()
	reg := &registration{lease: s.lease}
	committed := false
	s.track(k, gen, true)
	defer s.track(k, gen, false)
	defer func() {
		if !committed {
			// Best effort, with a context of its own: ctx may be what failed (even the
			// registration below, which may have reached the server all the same). Whatever
			// this leaves behind, the next commit of the session deletes, or it expires.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			_ = abortScript.Run(cctx, s.rdb, []string{k.saves}, k.chunkBase, gen).Err()
		}
	}()
	sent := time.Now()
	if err := beginScript.Run(ctx, s.rdb, []string{k.saves}, k.chunkBase, gen, ms(s.lease)).Err(); err != nil {
		return err
	}
	reg.renewed(sent)
	stopHeartbeat := heartbeat(s.lease, func(hctx context.Context) {
		sent := time.Now()
		switch v, err := touchScript.Run(hctx, s.rdb, []string{k.saves}, k.chunkBase, gen, ms(s.lease)).Int(); {
		case err != nil:
		case v == 1:
			reg.renewed(sent)
		default:
			reg.missing(time.Now())
		}
	})
	defer stopHeartbeat()

	n, size, err := s.writeChunks(ctx, k, gen, reg, remoteauth.ContextReader(ctx, r))
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	args := append([]any{k.chunkBase, gen, n, size, s.chunkSize, ms(s.ttl), s.keep, token}, s.spared(k, gen)...)
	res, err := commitScript.Run(cctx, s.rdb, []string{k.meta, k.saves, k.readers, k.history, k.lease}, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("commit (its outcome is unknown): %w", err)
	}
	switch res[0] {
	case 1:
		committed = true
		return nil
	case -2: // the script deleted the chunks and the registration
		return lostError(token)
	case 0:
		if reg.missing(time.Now()) {
			// A Save or a Delete of the session that ran during this one overtook it: as if
			// this one had committed just before.
			committed = true
			return nil
		}
		return fmt.Errorf("%w (lease %v)", errRegistrationExpired, s.lease)
	default:
		return fmt.Errorf("%w: chunk %d of %d expired before the commit: no heartbeat reached the server for %v", errChunkMissing, res[1], n, s.lease)
	}
}

// track records that this Store runs a Save of generation gen (add), or no longer does.
func (s *Store) track(k keys, gen string, add bool) {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	switch gens := s.pending[k.saves]; {
	case add && gens == nil:
		s.pending[k.saves] = map[string]bool{gen: true}
	case add:
		gens[gen] = true
	default:
		delete(gens, gen)
		if len(gens) == 0 {
			delete(s.pending, k.saves)
		}
	}
}

// spared returns the generations that the commit of gen must not supersede: with keep above 1,
// those of the other Saves of the session that this Store runs; with keep 1, none.
func (s *Store) spared(k keys, gen string) []any {
	if s.keep == 1 {
		return nil
	}
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	var list []any
	for g := range s.pending[k.saves] {
		if g != gen {
			list = append(list, g)
		}
	}
	return list
}

// A registration tells, by the Save's monotonic clock, until when its generation's registration
// cannot have expired: three quarters of the lease after the last renewal was sent. The rest of
// the lease is a margin for a server clock that runs fast. A registration found missing before
// then was removed by a commit or a Delete of another caller, during this Save: it was
// overtaken. Found missing later, it may have expired.
type registration struct {
	lease     time.Duration
	mu        sync.Mutex
	safeUntil time.Time
	overtaken bool
}

// renewed records a renewal of the registration (or its creation) sent at sent.
func (r *registration) renewed(sent time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u := sent.Add(r.lease - r.lease/4); u.After(r.safeUntil) {
		r.safeUntil = u
	}
}

// missing records that a reply received at got found the registration gone, and reports
// whether the Save was overtaken.
func (r *registration) missing(got time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !got.After(r.safeUntil) {
		r.overtaken = true
	}
	return r.overtaken
}

// writeChunks reads r in chunks and writes them under generation gen, putBatch chunks to a
// transaction, with at most saveBuffers chunks in memory. It returns the number of chunks and
// bytes read. Once the generation is found unregistered it writes no more, and reads r to its
// end.
func (s *Store) writeChunks(ctx context.Context, k keys, gen string, reg *registration, r io.Reader) (n int, size int64, err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		gone     atomic.Bool // the generation is no longer registered
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	free := make(chan []byte, saveBuffers)
	for range saveBuffers {
		free <- nil // allocated on first use: a small archive needs one buffer
	}
	defer wg.Wait() // before returning, so that no write outlives the Save

	var batch [][]byte // chunks read and not yet sent: chunks n-len(batch) to n-1
	send := func() {
		chunks, first := batch, n-len(batch)
		batch = nil
		if len(chunks) == 0 {
			return
		}
		if gone.Load() {
			for _, b := range chunks {
				free <- b[:cap(b)]
			}
			return
		}
		wg.Go(func() {
			defer func() {
				for _, b := range chunks {
					free <- b[:cap(b)]
				}
			}()
			sent := time.Now()
			ok, err := s.put(wctx, k, gen, first, chunks)
			switch {
			case err != nil:
				fail(err)
			case ok == 1:
				reg.renewed(sent)
			default:
				reg.missing(time.Now())
				gone.Store(true) // overtaken, or expired: the commit tells which
			}
		})
	}

	for {
		if err := failed(); err != nil {
			return 0, 0, err
		}
		var buf []byte
		select {
		case buf = <-free:
		case <-wctx.Done():
			if err := failed(); err != nil {
				return 0, 0, err
			}
			return 0, 0, ctx.Err()
		}
		if buf == nil {
			buf = make([]byte, s.chunkSize)
		}
		m, rerr := io.ReadFull(r, buf)
		size += int64(m)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return 0, 0, rerr
		}
		if m > 0 {
			batch = append(batch, buf[:m])
			n++
		} else {
			free <- buf
		}
		if rerr != nil { // io.EOF or io.ErrUnexpectedEOF: r is over
			send()
			wg.Wait()
			return n, size, failed()
		}
		if len(batch) == putBatch {
			send()
		}
		if gone.Load() {
			// Read r to its end, as Save promises, writing nothing more.
			rest, err := io.Copy(io.Discard, r)
			size += rest
			wg.Wait()
			if err != nil {
				return 0, 0, err
			}
			return n, size, failed()
		}
	}
}

// put writes chunks first, first+1, … of generation gen in one transaction, and reports whether
// the generation was still registered (if not, the chunks were deleted again in the same
// transaction). The script goes as EVAL, not EVALSHA: inside MULTI, a NOSCRIPT error would come
// after the SETs had run.
func (s *Store) put(ctx context.Context, k keys, gen string, first int, chunks [][]byte) (int, error) {
	keys := make([]string, 1, 1+len(chunks))
	keys[0] = k.saves
	var check *redis.Cmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for j, data := range chunks {
			key := k.chunk(gen, first+j)
			keys = append(keys, key)
			p.Set(ctx, key, data, s.lease)
		}
		check = putCheckScript.Eval(ctx, p, keys, gen, first+len(chunks), ms(s.lease))
		return nil
	})
	if err != nil {
		return 0, err
	}
	return check.Int()
}

// Extract writes session's archive to w. For a session without an archive it returns an error
// wrapping remoteauth.ErrNotFound and writes nothing. An Extract that races Saves writes one
// archive, whole (see the package documentation).
func (s *Store) Extract(ctx context.Context, session string, w io.Writer) error {
	k, err := s.begin(ctx, "extract", session)
	if err != nil {
		return err
	}
	return s.extractRetry(ctx, session, k, "", w)
}

// extractRetry extracts the archive of generation gen ("": the current one), starting again
// when it finds a chunk missing before writing anything, up to extractAttempts times.
func (s *Store) extractRetry(ctx context.Context, session string, k keys, gen string, w io.Writer) error {
	for attempt := 1; ; attempt++ {
		written, err := s.extract(ctx, k, gen, w)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errChunkMissing) || written > 0 || attempt == extractAttempts || ctx.Err() != nil {
			if errors.Is(err, errChunkMissing) && written > 0 {
				err = fmt.Errorf("%w (after %d bytes were written, which cannot be taken back)", err, written)
			}
			return opError("extract", session, withCtxErr(ctx, err))
		}
	}
}

// withCtxErr makes err wrap ctx's error if ctx has ended, for an error that may come from a
// command interrupted by ctx without saying so (a timeout, a closed connection).
func withCtxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// archive is what the meta key says.
type archive struct {
	gen       string
	chunks    int
	size      int64
	chunkSize int64
}

func parseMeta(vals []any) (archive, error) {
	var a archive
	if len(vals) != 4 {
		return a, fmt.Errorf("%w: meta has %d fields", errBadArchive, len(vals))
	}
	str := make([]string, 4)
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			return a, fmt.Errorf("%w: meta field %d is %T", errBadArchive, i, v)
		}
		str[i] = s
	}
	a.gen = str[0]
	n, err1 := strconv.ParseInt(str[1], 10, 32)
	size, err2 := strconv.ParseInt(str[2], 10, 64)
	cs, err3 := strconv.ParseInt(str[3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return a, fmt.Errorf("%w: meta: %w", errBadArchive, err)
	}
	a.chunks = int(n)
	a.size = size
	a.chunkSize = cs
	if cs <= 0 || cs > MaxChunkSize || size < 0 || n < 0 || (size+cs-1)/cs != n {
		return a, fmt.Errorf("%w: meta says %d bytes in %d chunks of %d", errBadArchive, size, n, cs)
	}
	return a, nil
}

// chunkLen is the length that chunk i must have.
func (a archive) chunkLen(i int) int64 {
	if i < a.chunks-1 {
		return a.chunkSize
	}
	return a.size - int64(a.chunks-1)*a.chunkSize
}

// extract makes one attempt at extracting the archive of generation gen ("": the current one),
// and returns how many bytes it wrote to w.
func (s *Store) extract(ctx context.Context, k keys, gen string, w io.Writer) (written int64, err error) {
	id := newID()
	vals, err := openScript.Run(ctx, s.rdb, []string{k.meta, k.readers, k.history}, k.chunkBase, id, ms(s.lease), gen, s.keep).Slice()
	if errors.Is(err, redis.Nil) && gen == "" {
		return 0, fmt.Errorf("%w: no key %s", remoteauth.ErrNotFound, k.meta)
	}
	if errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("archive %s: %w: the session keeps no archive with that ID (never saved, evicted or deleted)", gen, remoteauth.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	a, perr := parseMeta(vals)
	if a.gen != "" {
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			_ = closeScript.Run(cctx, s.rdb, []string{k.meta, k.readers, k.history}, k.chunkBase, a.gen, id, a.chunks).Err()
		}()
	}
	if perr != nil {
		return 0, perr
	}
	var next atomic.Int64 // the first chunk not yet read, for the heartbeat
	stopHeartbeat := heartbeat(s.lease, func(hctx context.Context) {
		_ = leaseScript.Run(hctx, s.rdb, []string{k.readers}, k.chunkBase, a.gen, id, ms(s.lease), next.Load(), a.chunks).Err()
	})
	defer stopHeartbeat()

	fctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // first: the reader below may wait for room in the queue
		wg.Wait()
	}()
	type result struct {
		b   []byte
		err error
	}
	queue := make(chan chan result, extractAhead)
	wg.Go(func() {
		defer close(queue)
		for i := range a.chunks {
			ch := make(chan result, 1)
			select {
			case queue <- ch:
			case <-fctx.Done():
				return
			}
			wg.Go(func() {
				b, err := s.rdb.Get(fctx, k.chunk(a.gen, i)).Bytes()
				ch <- result{b, err}
			})
		}
	})
	for i := range a.chunks {
		ch, ok := <-queue
		if !ok {
			return written, ctx.Err()
		}
		res := <-ch
		switch {
		case errors.Is(res.err, redis.Nil):
			return written, fmt.Errorf("%w: no key %s", errChunkMissing, k.chunk(a.gen, i))
		case res.err != nil:
			return written, res.err
		case int64(len(res.b)) != a.chunkLen(i):
			return written, fmt.Errorf("%w: chunk %s holds %d bytes, want %d", errBadArchive, k.chunk(a.gen, i), len(res.b), a.chunkLen(i))
		}
		next.Store(int64(i + 1))
		if err := ctx.Err(); err != nil {
			return written, err
		}
		m, err := w.Write(res.b)
		written += int64(m)
		if err == nil && m < len(res.b) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// heartbeat calls beat every quarter of lease until stop is called, with a context that stop
// cancels and that ends after a quarter of lease.
func heartbeat(lease time.Duration, beat func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lease / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				bctx, bcancel := context.WithTimeout(ctx, lease/4)
				beat(bctx)
				bcancel()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// newID returns 16 random hex digits: a generation id or an Extract's lease id.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// ms is d in whole milliseconds, as Redis takes durations.
func ms(d time.Duration) int64 { return d.Milliseconds() }
