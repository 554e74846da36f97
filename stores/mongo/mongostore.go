// Package mongostore is a [remoteauth.Store] that keeps session archives in MongoDB GridFS,
// through a [mongo.Database] of go.mongodb.org/mongo-driver/v2. Its default layout is the one of
// wwebjs-mongo (the MongoDB store of whatsapp-web.js RemoteAuth), so that a Node.js deployment
// and a Go one read and write each other's backups. It needs no transactions, so it also works
// with servers that speak the MongoDB wire protocol without them, such as FerretDB.
//
// # Data layout
//
// A session's archive is a GridFS file in a bucket of its own (names for session
// "RemoteAuth-alice", as wwebjs-mongo names them):
//
//	bucket       whatsapp-RemoteAuth-alice              see Options.BucketName
//	collections  whatsapp-RemoteAuth-alice.files        one document per revision:
//	                                                      {_id: ObjectID, length, chunkSize,
//	                                                       uploadDate, filename: "RemoteAuth-alice.zip"}
//	             whatsapp-RemoteAuth-alice.chunks       {_id, files_id, n, data}: the revision's bytes,
//	                                                      chunkSize (255 KiB by default) per chunk
//
// The archive of a session is its newest revision named "<session>.zip": the highest uploadDate,
// and among revisions uploaded in the same millisecond the highest _id. This is the revision
// that wwebjs-mongo's extract (openDownloadStreamByName, revision -1) reads too. The one
// exception is a revision saved under a lease that a newer lease's revision supersedes (see
// Leases).
//
// # Save
//
// Save writes a new revision as GridFS does, chunks first and the files document last: a
// revision becomes visible only once all its bytes are on the server, so no transaction is
// needed (FerretDB v1 has none). It reads the archive one batch of chunks at a time (about
// 4 MiB) and inserts each batch with one insertMany. If the reader fails, ctx ends or the server
// goes away, the files document is never written and the previous revision stays the archive;
// Save then deletes what it wrote, with a context of its own. If that fails too (the server is
// gone, the process dies), the chunks are orphans: chunks whose files_id has no files document.
// A later Save of the session deletes orphan chunks whose upload started longer than
// [Options.GracePeriod] ago (the time in their files_id ObjectID), so that an upload still in
// progress in another process is never touched. Looking for orphans reads the chunks collection
// (all of it on servers without index-only queries, such as FerretDB), so a Store does it on its
// first Save to a bucket, on the Save after one of its own failed to clean up, and otherwise at
// most once per grace period.
//
// After its upload, Save retires every revision of the session named "<session>.zip" but the
// archive, that is every older one (not only the oldest, as wwebjs-mongo does; see Leases for
// the one exception): it renames their files documents to "<session>.zip.retired", which
// wwebjs-mongo, looking files up by name, no longer sees, and records when
// (metadata.wwebstoreRetiredAt). So at most one revision is named "<session>.zip" between
// Saves, and it is the archive.
//
// Concurrent Saves of a session, in one process or several, all succeed: each retires the
// revisions older than its own, by (uploadDate, _id). uploadDate has millisecond precision, so
// two uploads that finish in the same millisecond are ordered by their ObjectIDs; the newest
// wins, whole, and exactly one revision remains named "<session>.zip". All of them are kept as
// history in that order (the order in which their files documents were written, by the clocks
// of their processes), up to Keep.
//
// Save creates the indexes of the GridFS specification (files {filename, uploadDate}, unique
// chunks {files_id, n}) once per bucket, as GridFS drivers do before writing.
//
// # History
//
// Retired revisions are the session's history: a Store implements [remoteauth.History] and
// keeps the last [Options.Keep] archives of each session (remoteauth.DefaultKeep, 2, by
// default: the archive and the one before it). Versions lists the archive and then the newest
// Keep-1 revisions older than it, by (uploadDate, _id); an archive's ID is its ObjectID in hex,
// which does not change when it is retired. A revision beyond Keep is evicted: no longer listed
// nor extracted by ExtractVersion, at once; its documents are deleted, files document then
// chunks, by a Save of the session once it has been evicted for longer than
// [Options.RetiredGracePeriod] (1 min), counted from the uploadDate of the revision whose Save
// evicted it, so that an Extract or ExtractVersion that had already chosen it finishes it
// whole. Between Saves, a bucket therefore holds the Keep kept revisions, and those evicted
// within the grace period (about one with the session engine's interval of at least a minute).
// With Keep 1 there is no history: a Save deletes the retired revisions after the grace period,
// as this package always did. A failed Save neither adds a revision (its files document is
// never written) nor evicts one (eviction follows an upload). Delete removes every revision.
//
// Data written before History existed needs no migration: the retired revisions that it still
// holds (an older mongostore deleted them a minute after their retirement) are the history,
// kept as above. A process running an older mongostore deletes retired revisions one minute after
// their retirement, whatever Keep says: upgrade every process that saves to a bucket.
//
// Retired revisions that are newer than the archive, or of a session without an archive, are
// what a deletion of the archive left: wwebjs-mongo's delete, which deletes "<session>.zip"
// only, or a Delete that was cut short (Delete deletes the archive first). Versions does not
// list them, and a Save deletes them, so that they never become the history of the session's
// next archive.
//
// # Leases
//
// A Store implements [remoteauth.Leaser]. Leases live in a collection of their own
// (Options.LeaseCollection, "wwebstore_leases" by default), one document per lease granted:
//
//	{_id: "<bucket>/<session>/<token in 20 digits>", key: "<bucket>/<session>", token, owner,
//	 expires, released}                                    index {key: 1, token: -1}
//
// Only the newest document of a key counts; a grant deletes the older ones, and nothing else
// deletes any (not Store.Delete, not Lease.Delete), so tokens never go back. AcquireLease reads
// the server's clock (the localTime of the hello command), then the newest document: if it is
// live (not released, expires after that time) the session is held; otherwise it inserts the
// document of the next token. The unique _id makes the insert the atomic step: of concurrent
// grants of one token exactly one succeeds (a conditional update would not do: FerretDB v1
// evaluates an update's filter and applies it in two steps). Renew sets expires to the server's
// time plus the TTL on the lease's document while it is not released, then checks that no newer
// lease exists. Expiry is thus measured by the server's clock, read a round trip before each
// write: a lease expires at most that much early, never late.
//
// Lease.Save is Save with three checks that the lease is the session's newest and not
// released: before the upload, after the chunks and just before the files document is written
// (a lost lease writes no files document, and its chunks are deleted), and after it (the
// revision is then deleted, and the older revisions were not yet retired). The files document
// records the token in metadata.wwebstoreLeaseToken. Without multi-document transactions
// (FerretDB, standalone MongoDB) the check and the insert cannot be one atomic step, so the
// fence is not atomic there: a lease that expires and is taken over between the last check and
// the insert (a window of one round trip, unless the process is paused in it) makes a stale
// revision visible until the re-check deletes it, or, if the process dies in between, for good.
// What this package guarantees even then: its readers (Extract, Versions, List, and the
// retirement of a Save) never take a revision saved under a token lower than another revision's
// as the archive, whatever their uploadDates, so a stale revision never replaces one saved
// under a newer lease; the newer holder's next Save retires it, and it is never listed as
// history. What it does not guarantee: such a stale revision can be the archive while the newer
// holder has not saved yet, and wwebjs-mongo, which reads by uploadDate only, may read it
// within the window. Revisions without a token (Store.Save, wwebjs-mongo) are ordered by
// uploadDate as before. Lease.Delete checks the lease, then deletes every revision except those
// saved under a newer token.
//
// # Extract, SessionExists, Delete
//
// Extract finds the newest revision (one query), then queries its chunks in order, in batches
// of about 4 MiB, and writes each to w, checking chunk numbers, sizes and the total length
// (a mismatch wraps [remoteauth.ErrCorruptArchive]). A missing session is an error wrapping
// [remoteauth.ErrNotFound], with nothing written. SessionExists counts the revisions named
// "<session>.zip". Delete deletes every revision of the session, current and retired (files
// document first, then chunks; the archive before the retired revisions), and the bucket's
// orphan chunks older than the grace period.
//
// # Memory
//
// Save holds one batch of chunks (about 4 MiB) and its encoding; Extract holds one batch of
// chunks as the driver received it. Neither holds the archive. Measured peak heap growth for a
// 256 MiB archive is in the README.
//
// # Errors
//
// Errors name the package, the operation and the session, and wrap the driver's error (or the
// reader's, the writer's, the context's) with %w:
//
//	mongostore: save session "RemoteAuth-alice": uploading: <the driver error>
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Defaults of [Options].
const (
	// DefaultChunkSize is GridFS's default chunk size, which wwebjs-mongo uses.
	DefaultChunkSize = 255 << 10
	// DefaultGracePeriod is how long orphan chunks of failed uploads are kept.
	DefaultGracePeriod = time.Hour
	// DefaultRetiredGracePeriod is how long revisions evicted from the history (beyond
	// Options.Keep) stay in the bucket before a Save deletes them.
	DefaultRetiredGracePeriod = time.Minute
	// MaxChunkSize keeps a chunk document well under MongoDB's 16 MiB document limit.
	MaxChunkSize = 15 << 20
)

// Options configure a [Store]. The zero value, like a nil *Options, gives the defaults.
type Options struct {
	// BucketName returns the GridFS bucket name of a session. The default is
	// "whatsapp-<session>", as in wwebjs-mongo. Several sessions may share a bucket: files are
	// told apart by their names, "<session>.zip". A name must be a valid MongoDB collection name
	// prefix: not empty, no '$' and no NUL.
	BucketName func(session string) string
	// ChunkSize is the GridFS chunk size of new revisions, in bytes: DefaultChunkSize (255 KiB)
	// by default, at most MaxChunkSize. Revisions written with any chunk size are read back.
	ChunkSize int
	// GracePeriod is how long orphan chunks of failed uploads, counted from the start of the
	// upload, are kept before a Save deletes them: longer than the longest Save.
	// DefaultGracePeriod (1 h) by default.
	GracePeriod time.Duration
	// RetiredGracePeriod is how long a revision that is no longer kept (beyond Keep) stays in
	// the bucket, counted from the Save that evicted it, before a Save deletes it: longer than
	// the longest Extract or ExtractVersion that may race Saves. DefaultRetiredGracePeriod
	// (1 min) by default.
	RetiredGracePeriod time.Duration
	// Keep is how many archives of each session the store keeps, the current one included (see
	// remoteauth.History and the package documentation): remoteauth.DefaultKeep (2) when 0;
	// 1 keeps no history; any positive number is allowed, negative ones are an error. Each kept
	// archive takes its size in the bucket, and Versions, ExtractVersion and every Save read
	// the files documents (not the chunks) of the kept revisions.
	Keep int
	// LeaseCollection is the collection of the store's lease documents, one per leased session
	// (see AcquireLease): DefaultLeaseCollection ("wwebstore_leases") by default. Every Store
	// that writes the same buckets must use the same one. A name must be a valid MongoDB
	// collection name: no '$' and no NUL.
	LeaseCollection string
}

// DefaultBucketName is the bucket name of wwebjs-mongo: "whatsapp-<session>".
func DefaultBucketName(session string) string { return "whatsapp-" + session }

// Store is a [remoteauth.Store] on MongoDB GridFS. It is safe for concurrent use.
type Store struct {
	db         *mongo.Database
	bucketName func(string) string
	chunkSize  int32
	grace      time.Duration
	retGrace   time.Duration
	keep       int
	leases     *mongo.Collection
	client     *mongo.Client // set when the Store owns it (OpenStore)
	indexed    sync.Map      // bucket name → struct{}: its GridFS indexes exist
	collected  sync.Map      // bucket name → time.Time: when a Save last looked for orphans
}

var (
	_ remoteauth.Store   = (*Store)(nil)
	_ remoteauth.Lister  = (*Store)(nil)
	_ remoteauth.History = (*Store)(nil)
	_ remoteauth.Leaser  = (*Store)(nil)
)

// New returns a Store that keeps archives in db. It checks the options and pings the server.
func New(ctx context.Context, db *mongo.Database, opts *Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("mongostore: nil database")
	}
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.BucketName == nil {
		o.BucketName = DefaultBucketName
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < 1 || o.ChunkSize > MaxChunkSize {
		return nil, fmt.Errorf("mongostore: chunk size %d is not between 1 and %d bytes", o.ChunkSize, MaxChunkSize)
	}
	if o.GracePeriod == 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	if o.RetiredGracePeriod == 0 {
		o.RetiredGracePeriod = DefaultRetiredGracePeriod
	}
	if o.GracePeriod < 0 || o.RetiredGracePeriod < 0 {
		return nil, fmt.Errorf("mongostore: negative grace period %v or %v", o.GracePeriod, o.RetiredGracePeriod)
	}
	if o.Keep == 0 {
		o.Keep = remoteauth.DefaultKeep
	}
	if o.Keep < 0 {
		return nil, fmt.Errorf("mongostore: Options.Keep is %d; want 1 or more (0 means the default, %d)", o.Keep, remoteauth.DefaultKeep)
	}
	if o.LeaseCollection == "" {
		o.LeaseCollection = DefaultLeaseCollection
	}
	if containsAny(o.LeaseCollection, "$\x00") {
		return nil, fmt.Errorf("mongostore: Options.LeaseCollection %q is not a valid collection name: remove '$' and NUL", o.LeaseCollection)
	}
	if err := db.Client().Ping(ctx, nil); err != nil {
		return nil, fmt.Errorf("mongostore: ping: %w", err)
	}
	return &Store{db: db, bucketName: o.BucketName, chunkSize: int32(o.ChunkSize), grace: o.GracePeriod,
		retGrace: o.RetiredGracePeriod, keep: o.Keep, leases: db.Collection(o.LeaseCollection)}, nil
}

// Close disconnects the client if the Store owns it (one that [remoteauth.OpenStore] opened);
// otherwise it does nothing: the database's client is the caller's.
func (s *Store) Close() error {
	if s.client == nil {
		return nil
	}
	if err := s.client.Disconnect(context.Background()); err != nil {
		return fmt.Errorf("mongostore: disconnect: %w", err)
	}
	return nil
}

// FileName returns the GridFS file name of a session's archive: "<session>.zip".
func FileName(session string) string { return session + ".zip" }

func retiredName(session string) string { return FileName(session) + ".retired" }

// retiredAtField holds, in a retired revision's files document, when it was retired.
const retiredAtField = "metadata.wwebstoreRetiredAt"

type bucket struct {
	name   string
	files  *mongo.Collection
	chunks *mongo.Collection
}

// open checks the session name and returns its bucket.
func (s *Store) open(op, session string) (*bucket, error) {
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return nil, fmt.Errorf("mongostore: %s session %q: %w", op, session, err)
	}
	name := s.bucketName(session)
	if name == "" || containsAny(name, "$\x00") {
		return nil, fmt.Errorf("mongostore: %s session %q: bucket name %q is not a valid collection name", op, session, name)
	}
	return &bucket{name: name, files: s.db.Collection(name + ".files"), chunks: s.db.Collection(name + ".chunks")}, nil
}

func containsAny(s, chars string) bool {
	for _, c := range s {
		for _, d := range chars {
			if c == d {
				return true
			}
		}
	}
	return false
}

func wrap(op, session string, err error) error {
	return fmt.Errorf("mongostore: %s session %q: %w", op, session, err)
}

// SessionExists reports whether the session has an archive.
func (s *Store) SessionExists(ctx context.Context, session string) (bool, error) {
	bk, err := s.open("look up", session)
	if err != nil {
		return false, err
	}
	n, err := bk.files.CountDocuments(ctx, bson.D{{Key: "filename", Value: FileName(session)}}, options.Count().SetLimit(1))
	if err != nil {
		return false, wrap("look up", session, err)
	}
	return n > 0, nil
}

// List returns the sessions that have an archive, sorted by name, with the length and upload
// date of their newest revisions. It lists the database's collections; in each GridFS files
// collection ("<bucket>.files") it finds the distinct file names "<session>.zip" and keeps the
// sessions whose bucket, by Options.BucketName, is that one, so that buckets of other
// applications and other stores' sessions are not listed; then it reads the newest revision of
// each session, as Extract would. It makes one query per bucket and one per session. It
// implements remoteauth.Lister.
func (s *Store) List(ctx context.Context) ([]remoteauth.SessionInfo, error) {
	fail := func(err error) ([]remoteauth.SessionInfo, error) {
		return nil, fmt.Errorf("mongostore: list sessions in database %q: %w", s.db.Name(), err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	colls, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fail(err)
	}
	var list []remoteauth.SessionInfo
	for _, coll := range colls {
		name, ok := strings.CutSuffix(coll, ".files")
		if !ok {
			continue
		}
		bk := &bucket{name: name, files: s.db.Collection(coll), chunks: s.db.Collection(name + ".chunks")}
		var filenames []any // foreign files documents may hold names of any type
		dctx, cancel := withoutDeadline(ctx)
		err := bk.files.Distinct(dctx, "filename", bson.D{}).Decode(&filenames)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("collection %q: distinct file names: %w", coll, err))
		}
		for _, f := range filenames {
			fn, _ := f.(string)
			session, ok := strings.CutSuffix(fn, ".zip")
			if !ok || remoteauth.ValidateSessionName(session) != nil || s.bucketName(session) != name {
				continue
			}
			d, err := newest(ctx, bk, session)
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue // deleted since Distinct
			}
			if err != nil {
				return fail(fmt.Errorf("session %q: %w", session, err))
			}
			list = append(list, remoteauth.SessionInfo{Name: session, Size: d.Length, Saved: d.UploadDate.Time()})
		}
	}
	slices.SortFunc(list, func(a, b remoteauth.SessionInfo) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// newest returns the session's archive: of the revisions named "<session>.zip", the one that
// current picks. It returns mongo.ErrNoDocuments when there is none.
func newest(ctx context.Context, bk *bucket, session string) (fileDoc, error) {
	list, err := named(ctx, bk, FileName(session))
	if err != nil {
		return fileDoc{}, err
	}
	if len(list) == 0 {
		return fileDoc{}, mongo.ErrNoDocuments
	}
	return current(list), nil
}

// named returns the files documents named name (their fields that fileDoc holds).
func named(ctx context.Context, bk *bucket, name string) ([]fileDoc, error) {
	cur, err := bk.files.Find(ctx, bson.D{{Key: "filename", Value: name}}, options.Find().SetProjection(fileDocProjection))
	if err != nil {
		return nil, err
	}
	var list []fileDoc
	if err := cur.All(ctx, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// current returns the archive among revisions named "<session>.zip" (list is not empty): a
// revision saved under a lease (see Lease.Save) whose token is lower than another's is
// superseded, whatever its uploadDate; of the others, the newest by (uploadDate, _id) wins.
// Revisions without a token (Store.Save, wwebjs-mongo) are never superseded, so without leases
// this is GridFS's rule, the one wwebjs-mongo reads by.
func current(list []fileDoc) fileDoc {
	var top uint64
	for _, d := range list {
		top = max(top, d.token())
	}
	cur, found := fileDoc{}, false
	for _, d := range list {
		if t := d.token(); t != 0 && t < top {
			continue
		}
		if !found || compareRevisions(d, cur) > 0 {
			cur, found = d, true
		}
	}
	return cur
}

type fileDoc struct {
	ID         bson.ObjectID `bson:"_id"`
	UploadDate bson.DateTime `bson:"uploadDate"`
	Length     int64         `bson:"length"`
	ChunkSize  int32         `bson:"chunkSize"`
	// Metadata is the files document's metadata, of any BSON type (foreign writers put their
	// own), projected to leaseTokenField.
	Metadata bson.RawValue `bson:"metadata"`
}

// fileDocProjection projects a files document to the fields of fileDoc.
var fileDocProjection = bson.D{{Key: "_id", Value: 1}, {Key: "uploadDate", Value: 1}, {Key: "length", Value: 1},
	{Key: "chunkSize", Value: 1}, {Key: leaseTokenField, Value: 1}}

// token returns the lease token that the revision was saved under (leaseTokenField), or 0 for a
// revision saved without a lease.
func (d fileDoc) token() uint64 {
	doc, ok := d.Metadata.DocumentOK()
	if !ok {
		return 0
	}
	v, err := doc.LookupErr(leaseTokenKey)
	if err != nil {
		return 0
	}
	n, ok := v.AsInt64OK()
	if !ok || n < 0 {
		return 0
	}
	return uint64(n)
}

// Extract writes the session's newest revision to w.
func (s *Store) Extract(ctx context.Context, session string, w io.Writer) error {
	bk, err := s.open("extract", session)
	if err != nil {
		return err
	}
	d, err := newest(ctx, bk, session)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return wrap("extract", session, remoteauth.ErrNotFound)
	}
	if err != nil {
		return wrap("extract", session, fmt.Errorf("finding the newest revision: %w", err))
	}
	if err := s.download(ctx, bk, d, w); err != nil {
		return wrap("extract", session, fmt.Errorf("revision %s: %w", d.ID.Hex(), err))
	}
	return nil
}

// download writes the chunks of file d to w, in order, checking their numbers and sizes. It
// asks for batches of about batchBytes: some servers (FerretDB) would otherwise send replies
// larger than the driver accepts.
func (s *Store) download(ctx context.Context, bk *bucket, d fileDoc, w io.Writer) error {
	if d.Length == 0 {
		return nil
	}
	if d.ChunkSize <= 0 {
		return fmt.Errorf("files document has chunkSize %d: %w", d.ChunkSize, remoteauth.ErrCorruptArchive)
	}
	want := (d.Length + int64(d.ChunkSize) - 1) / int64(d.ChunkSize)
	cur, err := bk.chunks.Find(ctx, bson.D{{Key: "files_id", Value: d.ID}},
		options.Find().SetSort(bson.D{{Key: "n", Value: 1}}).SetBatchSize(int32(max(1, batchBytes/int(d.ChunkSize)))).
			SetProjection(bson.D{{Key: "n", Value: 1}, {Key: "data", Value: 1}}))
	if err != nil {
		return fmt.Errorf("reading chunks: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var written int64
	var n int64
	for cur.Next(ctx) {
		var c struct {
			N    int64  `bson:"n"`
			Data []byte `bson:"data"`
		}
		if err := cur.Decode(&c); err != nil {
			return fmt.Errorf("decoding chunk %d: %w", n, err)
		}
		wantLen := int64(d.ChunkSize)
		if n == want-1 {
			wantLen = d.Length - n*int64(d.ChunkSize)
		}
		if c.N != n || n >= want || int64(len(c.Data)) != wantLen {
			return fmt.Errorf("chunk %d of %d: found n=%d with %d bytes, want %d bytes: %w", n, want, c.N, len(c.Data), wantLen, remoteauth.ErrCorruptArchive)
		}
		m, err := w.Write(c.Data)
		written += int64(m)
		if err != nil {
			return fmt.Errorf("writing, after %d of %d bytes: %w", written, d.Length, err)
		}
		n++
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("reading chunks, after %d of %d bytes: %w", written, d.Length, err)
	}
	if n != want {
		return fmt.Errorf("%d of %d chunks found (%d of %d bytes): %w", n, want, written, d.Length, remoteauth.ErrCorruptArchive)
	}
	return nil
}

// Save uploads r as the session's new revision, then retires the older ones; see the package
// documentation.
func (s *Store) Save(ctx context.Context, session string, r io.Reader) error {
	return s.save(ctx, session, r, nil)
}

// fence is what a Save or Delete under a lease checks: check returns an error wrapping
// remoteauth.ErrLeaseLost once token is no longer the session's newest lease, or was released.
type fence struct {
	token uint64
	check func(ctx context.Context) error
}

// save is Save, under the lease f when f is not nil: f is checked before the upload, after the
// chunks (the files document is written only if it holds), and after the files document (the
// revision is deleted if it no longer holds); see the package documentation (Leases).
func (s *Store) save(ctx context.Context, session string, r io.Reader, f *fence) error {
	bk, err := s.open("save", session)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return wrap("save", session, err)
	}
	if f != nil {
		if err := f.check(ctx); err != nil {
			return wrap("save", session, err)
		}
	}
	if err := s.ensureIndexes(ctx, bk); err != nil {
		return wrap("save", session, err)
	}
	if err := s.collect(ctx, bk, session); err != nil {
		return wrap("save", session, err)
	}
	id := bson.NewObjectID()
	if err := s.upload(ctx, bk, id, session, r, f); err != nil {
		return wrap("save", session, err)
	}
	if f != nil {
		if err := f.check(ctx); err != nil {
			if !errors.Is(err, remoteauth.ErrLeaseLost) {
				// Unknown: the revision stays, as a Save under a lease that holds would leave it
				// (a newer lease's revisions supersede it anyway).
				return wrap("save", session, fmt.Errorf("saved as revision %s, but checking the lease after it: %w", id.Hex(), err))
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if derr := deleteFile(cctx, bk, id); derr != nil {
				return wrap("save", session, fmt.Errorf("%w (and deleting revision %s, which a newer lease's revisions supersede, failed: %v)", err, id.Hex(), derr))
			}
			return wrap("save", session, err)
		}
	}
	if err := s.retireOlder(ctx, bk, session); err != nil {
		// The new revision is the archive; the older ones are merely still there.
		return wrap("save", session, fmt.Errorf("saved as revision %s, but retiring the older revisions: %w", id.Hex(), err))
	}
	return nil
}

// cleanupTimeout bounds the clean-up after a failed Save, which runs with a context of its own.
const cleanupTimeout = 30 * time.Second

// upload streams r into a new GridFS file with the given id: the chunks in batches of about
// batchBytes, then the files document (only if f, when not nil, still holds). On failure it
// deletes what it wrote, with a context of its own so that a cancelled ctx does not leave it
// behind.
func (s *Store) upload(ctx context.Context, bk *bucket, id bson.ObjectID, session string, r io.Reader, f *fence) error {
	err := s.writeFile(ctx, bk, id, session, remoteauth.ContextReader(ctx, r), f)
	if err == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// The files document may exist if the insert's reply was lost; delete it first so that no
	// revision ever points to deleted chunks.
	if ferr := deleteFile(cctx, bk, id); ferr != nil {
		s.collected.Delete(bk.name) // the next Save looks for orphans
		return fmt.Errorf("%w (and deleting the chunks written, left for a later Save: %v)", err, ferr)
	}
	return err
}

// batchBytes is about how many bytes of chunks Save sends in one insert.
const batchBytes = 4 << 20

func (s *Store) writeFile(ctx context.Context, bk *bucket, id bson.ObjectID, session string, r io.Reader, f *fence) error {
	size := int(s.chunkSize)
	per := max(1, batchBytes/size)
	buf := make([]byte, per*size)
	docs := make([]any, 0, per)
	var n int32
	var length int64
	for {
		m, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return fmt.Errorf("reading the archive: %w", rerr)
		}
		docs = docs[:0]
		for off := 0; off < m; off += size {
			docs = append(docs, bson.D{
				{Key: "_id", Value: bson.NewObjectID()},
				{Key: "files_id", Value: id},
				{Key: "n", Value: n},
				{Key: "data", Value: bson.Binary{Data: buf[off:min(m, off+size)]}},
			})
			n++
		}
		if len(docs) > 0 {
			if _, err := bk.chunks.InsertMany(ctx, docs); err != nil {
				return fmt.Errorf("writing chunks: %w", err)
			}
		}
		length += int64(m)
		if rerr != nil { // io.EOF or io.ErrUnexpectedEOF: the end of the archive
			break
		}
	}
	doc := bson.D{
		{Key: "_id", Value: id},
		{Key: "length", Value: length},
		{Key: "chunkSize", Value: s.chunkSize},
		{Key: "uploadDate", Value: bson.NewDateTimeFromTime(time.Now())},
		{Key: "filename", Value: FileName(session)},
	}
	if f != nil {
		if err := f.check(ctx); err != nil {
			return err
		}
		doc = append(doc, bson.E{Key: "metadata", Value: bson.D{{Key: leaseTokenKey, Value: int64(f.token)}}})
	}
	_, err := bk.files.InsertOne(ctx, doc)
	if err != nil {
		return fmt.Errorf("writing the files document: %w", err)
	}
	return nil
}

// retireOlder renames every revision named "<session>.zip" but the archive (as current picks
// it) to the retired name. Revisions that a concurrent Save renames are missed or renamed
// twice, both harmless: names only ever change from "<session>.zip" to the retired name.
func (s *Store) retireOlder(ctx context.Context, bk *bucket, session string) error {
	list, err := named(ctx, bk, FileName(session))
	if err != nil || len(list) < 2 {
		return err
	}
	cur := current(list)
	for _, d := range list {
		if d.ID == cur.ID {
			continue
		}
		if _, err := bk.files.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "filename", Value: FileName(session)}}, bson.D{{Key: "$set", Value: bson.D{
			{Key: "filename", Value: retiredName(session)},
			{Key: retiredAtField, Value: bson.NewDateTimeFromTime(time.Now())},
		}}}); err != nil {
			return err
		}
	}
	return nil
}

// ensureIndexes creates the indexes of the GridFS specification, as every GridFS driver does
// before its first write to a bucket (and so wwebjs-mongo): files {filename, uploadDate} and a
// unique chunks {files_id, n}. Creating an index that exists does nothing; each Store does it
// once per bucket.
func (s *Store) ensureIndexes(ctx context.Context, bk *bucket) error {
	if _, ok := s.indexed.Load(bk.name); ok {
		return nil
	}
	if _, err := bk.files.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "filename", Value: int32(1)}, {Key: "uploadDate", Value: int32(1)}},
	}); err != nil {
		return fmt.Errorf("creating the files index: %w", err)
	}
	if _, err := bk.chunks.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "files_id", Value: int32(1)}, {Key: "n", Value: int32(1)}},
		Options: options.Index().SetUnique(true),
	}); err != nil {
		return fmt.Errorf("creating the chunks index: %w", err)
	}
	s.indexed.Store(bk.name, struct{}{})
	return nil
}

// collect deletes the session's revisions that are no longer kept (see evict), and the
// bucket's orphan chunks older than the grace period.
func (s *Store) collect(ctx context.Context, bk *bucket, session string) error {
	cutoff := time.Now().Add(-s.grace)
	if err := s.evict(ctx, bk, session); err != nil {
		return err
	}
	// Looking for orphans reads the chunks collection's index (all of the collection on
	// servers without index-only queries, such as FerretDB), so a Store does it on its first
	// Save to a bucket, after one of its own Saves failed to clean up, and otherwise at most
	// once per grace period: orphans must be older than that anyway.
	if last, ok := s.collected.Load(bk.name); ok && time.Since(last.(time.Time)) < s.grace {
		return nil
	}
	start := time.Now()
	if err := deleteOrphans(ctx, bk, cutoff); err != nil {
		return err
	}
	s.collected.Store(bk.name, start)
	return nil
}

// deleteFile deletes a revision: its files document first, so that it is never visible without
// its chunks, then the chunks.
func deleteFile(ctx context.Context, bk *bucket, id any) error {
	if _, err := bk.files.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return err
	}
	_, err := bk.chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: id}})
	return err
}

// withoutDeadline returns a context that ends when ctx does but has no deadline, for distinct
// commands: the driver turns a deadline into maxTimeMS, which FerretDB 1.24 refuses on distinct
// ("unknown field maxTimeMS"), so a Save or List under a deadline (Session.Close on SIGTERM)
// would fail there. The command is still cancelled when ctx ends.
func withoutDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	return dctx, func() { stop(); cancel() }
}

// deleteOrphans deletes the chunks of files that have no files document and whose ObjectID
// (the start of their upload) is older than cutoff. Chunks of files with other kinds of _id
// (not written by this package) are left alone.
func deleteOrphans(ctx context.Context, bk *bucket, cutoff time.Time) error {
	dctx, cancel := withoutDeadline(ctx)
	defer cancel()
	res := bk.chunks.Distinct(dctx, "files_id", bson.D{
		{Key: "files_id", Value: bson.D{{Key: "$lt", Value: bson.NewObjectIDFromTimestamp(cutoff)}}},
		{Key: "n", Value: int32(0)}, // every upload writes chunk 0 first
	})
	if err := res.Err(); err != nil {
		return fmt.Errorf("listing chunk owners: %w", err)
	}
	var ids []bson.ObjectID
	if err := res.Decode(&ids); err != nil {
		return fmt.Errorf("listing chunk owners: %w", err)
	}
	for _, id := range ids {
		n, err := bk.files.CountDocuments(ctx, bson.D{{Key: "_id", Value: id}}, options.Count().SetLimit(1))
		if err != nil {
			return fmt.Errorf("looking for the files document of %s: %w", id.Hex(), err)
		}
		if n > 0 {
			continue
		}
		if _, err := bk.chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: id}}); err != nil {
			return fmt.Errorf("deleting orphan chunks of %s: %w", id.Hex(), err)
		}
	}
	return nil
}

// Delete deletes every revision of the session, current and retired (the archive first, so that
// a Delete cut short leaves no archive, only retired revisions that the next Save deletes), and
// the bucket's orphan chunks older than the grace period. Deleting a missing session returns nil.
func (s *Store) Delete(ctx context.Context, session string) error {
	return s.delete(ctx, session, nil)
}

// delete is Delete, under the lease f when f is not nil: f is checked first, and revisions saved
// under a newer lease than f's are left alone.
func (s *Store) delete(ctx context.Context, session string, f *fence) error {
	bk, err := s.open("delete", session)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return wrap("delete", session, err)
	}
	if f != nil {
		if err := f.check(ctx); err != nil {
			return wrap("delete", session, err)
		}
	}
	// The archive first, so that a Delete cut short leaves retired revisions only, which
	// Versions does not list and the next Save deletes.
	cur, err := bk.files.Find(ctx, bson.D{{Key: "filename", Value: bson.D{{Key: "$in", Value: bson.A{FileName(session), retiredName(session)}}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "filename", Value: 1}, {Key: leaseTokenField, Value: 1}}).SetSort(bson.D{{Key: "filename", Value: 1}}))
	if err != nil {
		return wrap("delete", session, err)
	}
	var docs []struct {
		ID       any           `bson:"_id"`
		Metadata bson.RawValue `bson:"metadata"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return wrap("delete", session, err)
	}
	for _, d := range docs {
		if f != nil && (fileDoc{Metadata: d.Metadata}).token() > f.token {
			continue // saved under a newer lease: its holder's, not this lease's, to delete
		}
		if err := deleteFile(ctx, bk, d.ID); err != nil {
			return wrap("delete", session, err)
		}
	}
	if err := deleteOrphans(ctx, bk, time.Now().Add(-s.grace)); err != nil {
		return wrap("delete", session, err)
	}
	return nil
}
