// Package s3store is a [remoteauth.Store] that keeps session archives as objects in an Amazon S3
// bucket, or in any S3-compatible server (MinIO, versitygw, Ceph RGW, Cloudflare R2, …). It takes a
// client of github.com/aws/aws-sdk-go-v2/service/s3:
//
//	cfg, err := config.LoadDefaultConfig(ctx) // the standard AWS credential chain
//	client := s3.NewFromConfig(cfg)
//	st, err := s3store.New(ctx, client, "my-bucket", &s3store.Options{Prefix: "sessions"})
//
// For an S3-compatible server, set the endpoint and path-style addressing on the client (the
// store does not change the client):
//
//	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
//		o.BaseEndpoint = aws.String("http://127.0.0.1:9000")
//		o.UsePathStyle = true // bucket in the path, not in the host name
//	})
//
// New checks access with one request (see New and Options.SkipAccessCheck), so wrong
// credentials, a missing bucket or an unreachable endpoint fail there, with an error wrapping
// ErrAccessCheck that says what to fix, rather than at the first Save or Extract.
//
// # Data layout
//
// A session is one object, at the key that wwebjs-aws-s3 (the Node.js store of whatsapp-web.js
// RemoteAuth) uses: path.Join(Prefix, session+".zip"), with content type application/zip (which
// nothing reads; wwebjs-aws-s3 sets none). The prefix is wwebjs-aws-s3's remoteDataPath, joined as
// its Node.js path.join joins it: a trailing slash is dropped and repeated slashes are one, so
// "sessions", "sessions/" and "sessions//" all give "sessions/RemoteAuth-alice.zip", and an empty
// prefix gives "RemoteAuth-alice.zip". Archives written by either store are read by the other.
//
// # Saving
//
// Save streams: an archive smaller than one part (Options.PartSize, 8 MiB by default) is read into
// one buffer and sent with a single PutObject; a larger one goes up as a multipart upload, with at
// most Options.Concurrency parts (4 by default) in memory and in flight at once, so that Save holds
// at most PartSize × Concurrency bytes of the archive (32 MiB by default) whatever its length. S3
// makes the object visible only when CompleteMultipartUpload succeeds, and replaces the previous
// object at once: Extract and SessionExists see the previous archive or the new one, whole.
//
// When anything fails (r returns an error, ctx ends, a part is refused, the connection breaks),
// Save aborts the multipart upload with a fresh context of 30 seconds, so that no parts are left
// stored and billed. If the abort itself cannot reach the server (or the process dies), the
// parts stay until a bucket lifecycle rule removes them: configure AbortIncompleteMultipartUpload
// on the bucket (see the README).
//
// # Extracting
//
// Extract streams the object with GetObject. If the connection breaks after some bytes were
// written, it resumes with a ranged GetObject conditional on the ETag of the first response
// (If-Match), so that what it writes is always one archive: if the archive was replaced in the
// meantime, Extract fails with an error wrapping ErrChanged instead of mixing two archives.
//
// # History
//
// A Store implements [remoteauth.History]: it keeps the last [Options.Keep] archives of each
// session (remoteauth.DefaultKeep, 2, by default: the current one and the one before), so that
// Session.Restore can fall back to the previous archive when the newest is damaged. The current
// archive stays at the key above, where wwebjs-aws-s3 reads it; Save records its ID in the
// object's user metadata (MetadataID). The previous ones are objects in the session's history
// folder, Key(session)+HistorySuffix+"/" (sessions/RemoteAuth-alice.zip.history/), named
// <seq>_<saved>_<id>.zip: seq is when the archive was kept and orders the history, saved its
// Last-Modified as the current archive (both nanoseconds since 1970, 19 digits), id its ID. A
// session key never has a "/" after the prefix, so no session's key lies in a history folder,
// and List does not report kept archives as sessions; New refuses a Prefix that is a history
// folder.
//
// Save uploads the new archive as before. Then, under a lock of the session in this process,
// it reads the current archive (HeadObject), copies it server-side into the history folder
// (CopyObject conditional on its ETag; above 5 GiB, CopyObject's limit, a multipart copy with
// UploadPartCopy), and only then makes the new archive current (PutObject or
// CompleteMultipartUpload). Last it deletes the kept archives beyond Keep. So no step loses an
// archive that Keep says to keep: a Save that fails or dies before the new archive is current
// leaves at most a copy of the current archive in the history folder, which Versions does not
// list twice and the next Save does not copy again; one that dies after leaves archives beyond
// Keep, which are not listed and which the next Save deletes. A failed Save neither adds nor
// evicts an archive. Without a current archive, Save first removes what the history folder holds
// (left by an interrupted Delete, or by a Delete of wwebjs-aws-s3, which removes the current
// object only), so that an old history never becomes the new archive's.
//
// An object at a session's key without MetadataID (written by wwebjs-aws-s3, or by s3store
// before it kept history) has an ID derived from its ETag and Last-Modified; it is kept like any
// other by the next Save. No migration is needed. With Keep 1, Save keeps nothing and removes
// the history folder; a lower Keep than before lists the newest Keep archives and the next Save
// deletes the others. Delete removes the current archive, then the history folder.
//
// The saves of one session in one process are kept in the order in which they completed. Saves
// of one session from several processes at once are not coordinated: the history may then miss
// an archive that was current for a moment (the current archive is always one of them, whole),
// and its order follows the hosts' clocks.
//
// # Leases
//
// A Store implements [remoteauth.Leaser]. The lease of a session is the object
// Key(session)+LeaseSuffix (sessions/RemoteAuth-alice.zip.lease), a JSON record of the newest
// lease granted (token, owner, TTL, expiry by the holder's clock, released), changed only by
// conditional PutObjects: If-None-Match: * to create it, If-Match: <ETag> to take it over, renew or
// release it; a write that loses a race (412, or 409 ConditionalRequestConflict) reads it again,
// at most 10 times. It is never deleted, so tokens never go back, not even after Delete.
//
// Expiry: a lease is live until released or until both clocks say it expired: the holder's (its
// recorded expiry against the acquirer's clock) and the server's (the object's Last-Modified
// plus the TTL against the Date of the response that read it, plus one second for the HTTP
// dates' whole seconds). A fast client clock cannot take a live lease early; a takeover comes up
// to about 2 s after the TTL. LeaseHeldError.Expires is the holder's recorded expiry.
//
// Fencing: S3 cannot make the lease check atomic with the archive switch (no multi-object
// transaction). A Lease's Save stamps its token on the archive (MetadataLease) and, in the
// commit, under the session's lock: reads the current archive (ETag E, token T), fails with
// ErrLeaseLost if T is above its token or the lease object says it is no longer the newest or
// was released, then makes the new archive current with PutObject or CompleteMultipartUpload
// If-Match: E (If-None-Match: * without an archive), and starts again on 412/409, at most
// maxCommits (5) times. Guaranteed: an archive saved under a lease is never replaced by a Save of
// an older lease, and History, streaming and the atomic replace are as for Save. Not guaranteed:
// in the window between the lease check and the conditional write, a lease that expires and is
// taken over by a holder that has not saved yet does not stop the write (the new holder's first
// save replaces it); a newer archive byte-identical to the one read (same ETag) does not either;
// and a Lease's Delete is a check, then DeleteObject If-Match: E, which MinIO (2026-02) does not
// enforce. See the README, Leases.
//
// # Permissions
//
// New's access check calls ListObjectsV2 of the prefix (s3:ListBucket; skip it with
// Options.SkipAccessCheck). The store calls HeadObject, GetObject, PutObject (conditional ones for leases: the lease
// object is under the prefix and needs no other permission), CreateMultipartUpload, UploadPart,
// CompleteMultipartUpload, AbortMultipartUpload and DeleteObject on its keys, and, to keep
// history, CopyObject (UploadPartCopy above 5 GiB) and ListObjectsV2 of the session's history
// folder: Save, Delete, Versions and ExtractVersion of an older archive list the bucket, and
// need s3:ListBucket. List, the optional remoteauth.Lister (used by the wwebstore command's ls
// and cp --all), lists the bucket, with ListObjectsV2. Note that Amazon S3 answers 403 Forbidden instead of 404 Not Found for a
// missing key when the caller lacks s3:ListBucket on the bucket: SessionExists and Extract then
// report that 403 as an error (never as "no session"), so grant s3:ListBucket (which List needs
// too) or expect errors for sessions that were never saved.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/wwebstore/wwebstore/remoteauth"
)

const (
	// DefaultPartSize is the default size of the parts of a multipart upload.
	DefaultPartSize = 8 << 20
	// MinPartSize is the smallest part size: S3 refuses smaller parts other than the last.
	MinPartSize = 5 << 20
	// MaxPartSize is the largest part size S3 accepts.
	MaxPartSize = 5 << 30
	// MaxParts is the largest number of parts of an upload: with the default part size, an archive
	// may be up to 80 GiB long.
	MaxParts = 10000
	// DefaultConcurrency is the default number of parts uploaded at once.
	DefaultConcurrency = 4
	// ContentType is the content type of every archive.
	ContentType = "application/zip"

	// abortTimeout bounds the AbortMultipartUpload that follows a failed Save.
	abortTimeout = 30 * time.Second
	// maxResumes is how many times Extract resumes a broken download.
	maxResumes = 3
)

// ErrChanged is wrapped by the error of an Extract whose download broke after some bytes were
// written and could not be resumed because the archive had been replaced meanwhile. The caller
// may retry the Extract from scratch (discarding what was written).
var ErrChanged = errors.New("s3store: the archive changed during the download")

// Options configure a Store. The zero value, like a nil *Options, gives the defaults.
type Options struct {
	// Prefix is prepended to the object keys, as wwebjs-aws-s3's remoteDataPath:
	// the key is path.Join(Prefix, session+".zip"). Empty: keys at the bucket's root.
	Prefix string
	// PartSize is the size of the parts of a multipart upload, and the largest archive sent
	// with a single PutObject: 0 means DefaultPartSize; otherwise MinPartSize to MaxPartSize.
	PartSize int64
	// Concurrency is the number of parts uploaded at once: 0 means DefaultConcurrency.
	Concurrency int
	// ServerSideEncryption asks S3 to encrypt archives at rest: "AES256" (SSE-S3) or
	// "aws:kms" (SSE-KMS, with SSEKMSKeyID or the bucket's default KMS key). Empty: the
	// bucket's default encryption.
	ServerSideEncryption types.ServerSideEncryption
	// SSEKMSKeyID is the KMS key of SSE-KMS; only with ServerSideEncryption "aws:kms".
	SSEKMSKeyID string
	// StorageClass of the archives ("STANDARD", "STANDARD_IA", …). Empty: the bucket's default.
	// Archive classes that need a restore before a GET (GLACIER, DEEP_ARCHIVE) make Extract fail.
	// It applies to the kept archives too.
	StorageClass types.StorageClass
	// Keep is how many archives of each session the store keeps, the current one included (see
	// remoteauth.History and the package documentation, History): 0 means
	// remoteauth.DefaultKeep (2); 1 keeps no history (and a Save removes the history it finds);
	// any positive number is allowed. Each kept archive is an object of the archive's size,
	// stored and billed.
	Keep int
	// SkipAccessCheck makes New send no request. By default New checks, within
	// AccessCheckTimeout, that the credentials can be found and are accepted, that the bucket
	// exists and that the store's prefix can be listed (ListObjectsV2 of at most one key, which
	// the README's least-privilege policy allows), and fails with an error wrapping
	// ErrAccessCheck that says what to fix. Skip it for a policy without s3:ListBucket (the
	// first call then shows what is wrong), or to construct a Store while offline. URL
	// parameter: check=false.
	SkipAccessCheck bool
}

func (o *Options) validate() error {
	if o.PartSize != 0 && (o.PartSize < MinPartSize || o.PartSize > MaxPartSize) {
		return fmt.Errorf("s3store: part size %d is outside %d (5 MiB) to %d (5 GiB)", o.PartSize, MinPartSize, int64(MaxPartSize))
	}
	if o.Concurrency < 0 {
		return fmt.Errorf("s3store: concurrency %d is negative", o.Concurrency)
	}
	if o.Keep < 0 {
		return fmt.Errorf("s3store: keep %d is negative; want 1 or more (0 means the default, %d)", o.Keep, remoteauth.DefaultKeep)
	}
	if strings.HasSuffix(path.Clean("/"+o.Prefix), ".zip"+HistorySuffix) {
		return fmt.Errorf("s3store: prefix %q is the history folder of a session (it ends in %q): choose another prefix", o.Prefix, ".zip"+HistorySuffix)
	}
	switch o.ServerSideEncryption {
	case "", types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms, types.ServerSideEncryptionAwsKmsDsse:
	default:
		return fmt.Errorf("s3store: server-side encryption %q is none of AES256, aws:kms and aws:kms:dsse", o.ServerSideEncryption)
	}
	if o.SSEKMSKeyID != "" && o.ServerSideEncryption != types.ServerSideEncryptionAwsKms && o.ServerSideEncryption != types.ServerSideEncryptionAwsKmsDsse {
		return errors.New("s3store: a KMS key id needs server-side encryption aws:kms")
	}
	return nil
}

// Store keeps session archives in an S3 bucket. It is safe for concurrent use.
type Store struct {
	client      *s3.Client
	bucket      string
	prefix      string
	partSize    int64
	concurrency int
	sse         types.ServerSideEncryption
	kmsKeyID    string
	class       types.StorageClass
	keep        int // archives kept per session, at least 1
	// locks order the commits of the Saves of a session in this process (see commit): a
	// session uses locks[fnv32a(session) % len], each a channel of capacity 1.
	locks [64]chan struct{}
}

var (
	_ remoteauth.Store  = (*Store)(nil)
	_ remoteauth.Lister = (*Store)(nil)
)

// New returns a Store that keeps archives in bucket through client; opts may be nil for the
// defaults. It validates the options, then, unless opts.SkipAccessCheck, checks access with one
// request bounded by ctx and AccessCheckTimeout: it retrieves the client's credentials and
// lists at most one key under the prefix (ListObjectsV2, which needs s3:ListBucket on the
// bucket for the prefix, as List does). Wrong or missing credentials, a policy that does not
// allow that listing, a missing bucket, a bucket in another region and an endpoint that cannot
// be reached fail New with an error wrapping ErrAccessCheck and the SDK's error, naming the
// bucket and the endpoint and saying what to fix (never showing the secret key).
func New(ctx context.Context, client *s3.Client, bucket string, opts *Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("s3store: the S3 client is nil")
	}
	if bucket == "" {
		return nil, errors.New("s3store: the bucket name is empty")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Keep == 0 {
		o.Keep = remoteauth.DefaultKeep
	}
	s := &Store{
		client:      client,
		bucket:      bucket,
		prefix:      o.Prefix,
		partSize:    o.PartSize,
		concurrency: o.Concurrency,
		sse:         o.ServerSideEncryption,
		kmsKeyID:    o.SSEKMSKeyID,
		class:       o.StorageClass,
		keep:        o.Keep,
	}
	for i := range s.locks {
		s.locks[i] = make(chan struct{}, 1)
	}
	if !o.SkipAccessCheck {
		if err := s.checkAccess(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Key returns the object key of session: path.Join(Prefix, session+".zip"), as wwebjs-aws-s3.
// It does not check the name.
func (s *Store) Key(session string) string { return path.Join(s.prefix, session+".zip") }

// check validates the session name and ctx, before any request.
func (s *Store) check(ctx context.Context, op, session string) error {
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return fmt.Errorf("s3store: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return s.errorf(op, session, "%w", err)
	}
	return nil
}

func (s *Store) errorf(op, session, format string, args ...any) error {
	return fmt.Errorf("s3store: %s session %q (s3://%s/%s): %w", op, session, s.bucket, s.Key(session), fmt.Errorf(format, args...))
}

// isNotFound reports whether err is S3's answer for a missing key: NoSuchKey, or a bare 404
// NotFound (the answer to a HEAD, which has no body to say which of the key and the bucket is
// missing). A missing bucket (NoSuchBucket) is not a missing key.
func isNotFound(err error) bool {
	if isNoSuchKey(err) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode() == "NotFound"
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// isNoSuchKey reports whether err is S3's NoSuchKey error, which only a response with a body
// (GET, DELETE) can carry.
func isNoSuchKey(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchKey"
}

// List returns the sessions that have an archive, sorted by name, with the sizes and
// LastModified times of their objects. It lists the keys directly under the prefix with
// ListObjectsV2 (1,000 keys a request), which needs the s3:ListBucket permission; keys that are
// not "<prefix>/<session>.zip" for a valid session name are skipped. An object appears only once
// its upload has completed. It implements remoteauth.Lister.
func (s *Store) List(ctx context.Context) ([]remoteauth.SessionInfo, error) {
	prefix := s.listPrefix()
	fail := func(err error) ([]remoteauth.SessionInfo, error) {
		return nil, fmt.Errorf("s3store: list sessions in s3://%s/%s: %w", s.bucket, prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	var list []remoteauth.SessionInfo
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix, Delimiter: aws.String("/")})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fail(fmt.Errorf("ListObjectsV2: %w", err))
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			session, ok := strings.CutSuffix(strings.TrimPrefix(key, prefix), ".zip")
			if !ok || remoteauth.ValidateSessionName(session) != nil || s.Key(session) != key {
				continue
			}
			list = append(list, remoteauth.SessionInfo{Name: session, Size: aws.ToInt64(o.Size), Saved: aws.ToTime(o.LastModified)})
		}
	}
	// S3 lists keys in UTF-8 byte order, which ".zip" can upset ("a-.zip" before "a.zip").
	slices.SortFunc(list, func(a, b remoteauth.SessionInfo) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// SessionExists reports whether session has an archive, with HeadObject. S3 answers the HEAD of
// a missing key and the HEAD of a key in a missing bucket with the same bare 404, so a 404 is
// confirmed with a GetObject, whose error says which is missing: (false, nil) only for
// NoSuchKey.
func (s *Store) SessionExists(ctx context.Context, session string) (bool, error) {
	if err := s.check(ctx, "SessionExists", session); err != nil {
		return false, err
	}
	cur, err := s.head(ctx, session)
	if err != nil {
		return false, s.errorf("SessionExists", session, "%w", err)
	}
	return cur != nil, nil
}

// Delete removes the archive of session, then every archive kept before it (the whole history
// folder, whatever the store's Keep); a missing one is no error. If it fails after the first
// step, the session has no archive and its history is not listed; Delete again, or the next
// Save, removes the rest.
func (s *Store) Delete(ctx context.Context, session string) error {
	if err := s.check(ctx, "Delete", session); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.Key(session))})
	return s.deleteRest(ctx, session, err)
}

// deleteRest finishes a Delete whose DeleteObject of the current archive returned err: it
// removes the history folder.
func (s *Store) deleteRest(ctx context.Context, session string, err error) error {
	// S3 answers 204 for a missing key; NoSuchKey is tolerated from other servers.
	if err != nil && !isNoSuchKey(err) {
		return s.errorf("Delete", session, "DeleteObject: %w", err)
	}
	kept, others, err := s.listHistory(ctx, session)
	if err == nil {
		err = s.deleteKept(ctx, kept, others)
	}
	if err != nil {
		return s.errorf("Delete", session, "the archive is deleted, but not the archives kept before it (Delete again to remove them): %w", err)
	}
	return nil
}

// Save reads r to its end and stores it as the archive of session, replacing the previous one
// when the upload completes: see the package documentation.
func (s *Store) Save(ctx context.Context, session string, r io.Reader) error {
	if err := s.check(ctx, "Save", session); err != nil {
		return err
	}
	return s.save(ctx, session, r, nil)
}

// save is Save, fenced by f when f is not nil (a Lease's Save).
func (s *Store) save(ctx context.Context, session string, r io.Reader, f *fence) error {
	r = remoteauth.ContextReader(ctx, r)
	first := make([]byte, s.partSize)
	n, err := io.ReadFull(r, first)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // smaller than a part: one PutObject
		if err := ctx.Err(); err != nil {
			return s.errorf("Save", session, "%w", err)
		}
		id := newID()
		err := s.commit(ctx, session, id, f, func(c condition) error {
			_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
				Bucket:               &s.bucket,
				Key:                  aws.String(s.Key(session)),
				Body:                 bytes.NewReader(first[:n]),
				ContentLength:        aws.Int64(int64(n)),
				ContentType:          aws.String(ContentType),
				Metadata:             f.metadata(id),
				ServerSideEncryption: s.sse,
				SSEKMSKeyId:          s.kmsKeyIDPtr(),
				StorageClass:         s.class,
				IfMatch:              c.ifMatch,
				IfNoneMatch:          c.ifNoneMatch,
			})
			if err != nil {
				return fmt.Errorf("PutObject: %w", err)
			}
			return nil
		})
		if err != nil {
			return s.errorf("Save", session, "%w", err)
		}
		return nil
	case nil:
		return s.saveMultipart(ctx, session, r, first, f)
	default:
		return s.errorf("Save", session, "reading the archive: %w", err)
	}
}

func (s *Store) kmsKeyIDPtr() *string {
	if s.kmsKeyID == "" {
		return nil
	}
	return &s.kmsKeyID
}

// saveMultipart uploads first, then the rest of r, as a multipart upload, with at most
// s.concurrency part buffers, and aborts the upload if anything fails.
func (s *Store) saveMultipart(ctx context.Context, session string, r io.Reader, first []byte, f *fence) error {
	key, id := s.Key(session), newID()
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:               &s.bucket,
		Key:                  &key,
		ContentType:          aws.String(ContentType),
		Metadata:             f.metadata(id),
		ServerSideEncryption: s.sse,
		SSEKMSKeyId:          s.kmsKeyIDPtr(),
		StorageClass:         s.class,
		ChecksumAlgorithm:    types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return s.errorf("Save", session, "CreateMultipartUpload: %w", err)
	}
	uploadID := created.UploadId

	upCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		parts    []types.CompletedPart
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	failed := func() bool { // whether a part failed
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	// Part buffers: the first one is allocated; the others as needed, up to s.concurrency.
	free := make(chan []byte, s.concurrency)
	allocated := 1
	getBuf := func() ([]byte, bool) {
		select {
		case b := <-free:
			return b, true
		default:
		}
		if allocated < s.concurrency {
			allocated++
			return make([]byte, s.partSize), true
		}
		select {
		case b := <-free:
			return b, true
		case <-upCtx.Done():
			return nil, false
		}
	}

	buf, n := first, len(first)
	var readErr error
	for num := int32(1); ; num++ {
		if num > MaxParts {
			fail(fmt.Errorf("the archive is longer than %d parts of %d bytes", MaxParts, s.partSize))
			free <- buf
			break
		}
		b, bn := buf, n
		wg.Go(func() {
			defer func() { free <- b }()
			out, err := s.client.UploadPart(upCtx, &s3.UploadPartInput{
				Bucket:            &s.bucket,
				Key:               &key,
				UploadId:          uploadID,
				PartNumber:        aws.Int32(num),
				Body:              bytes.NewReader(b[:bn]),
				ContentLength:     aws.Int64(int64(bn)),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			if err != nil {
				fail(fmt.Errorf("UploadPart %d: %w", num, err))
				return
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
			mu.Unlock()
		})
		if bn < len(b) { // that was the last part
			break
		}
		var ok bool
		if buf, ok = getBuf(); !ok {
			break
		}
		var err error
		n, err = io.ReadFull(r, buf)
		if err == io.EOF { // the previous part was the last one
			free <- buf
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			free <- buf
			readErr = fmt.Errorf("reading the archive: %w", err)
			fail(readErr)
			break
		}
		if failed() {
			free <- buf
			break
		}
	}
	wg.Wait()
	switch {
	case readErr != nil:
		firstErr = readErr // it wraps ctx's error when ctx ended during a Read
	case ctx.Err() != nil && (firstErr == nil || !errors.Is(firstErr, ctx.Err())):
		// The parts that ctx cancelled fail with errors that may not say why.
		if firstErr == nil {
			firstErr = ctx.Err()
		} else {
			firstErr = fmt.Errorf("%w (%v)", ctx.Err(), firstErr)
		}
	}
	if firstErr == nil {
		sortParts(parts)
		err := s.commit(ctx, session, id, f, func(c condition) error {
			_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
				Bucket:          &s.bucket,
				Key:             &key,
				UploadId:        uploadID,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
				IfMatch:         c.ifMatch,
				IfNoneMatch:     c.ifNoneMatch,
			})
			if err != nil {
				return fmt.Errorf("CompleteMultipartUpload: %w", err)
			}
			return nil
		})
		if err == nil {
			return nil
		}
		firstErr = err
	}
	if err := s.abort(ctx, key, uploadID); err != nil {
		return s.errorf("Save", session, "%w; and AbortMultipartUpload %s failed, its parts stay until a lifecycle rule removes them: %w", firstErr, aws.ToString(uploadID), err)
	}
	return s.errorf("Save", session, "%w (multipart upload aborted)", firstErr)
}

// abort aborts a multipart upload with a fresh context: ctx may have ended, and the parts must
// not stay billed. It tries again, with backoff, for up to abortTimeout, so that a server that
// was away for a moment (the usual reason why a Save failed) still gets the abort.
func (s *Store) abort(ctx context.Context, key string, uploadID *string) error {
	abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		_, err := s.client.AbortMultipartUpload(abortCtx, &s3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: &key, UploadId: uploadID,
		})
		if err == nil || isNoSuchUpload(err) {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-abortCtx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func isNoSuchUpload(err error) bool {
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsu) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchUpload"
}

func sortParts(parts []types.CompletedPart) {
	// Insertion sort: parts come back nearly in order.
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && *parts[j-1].PartNumber > *parts[j].PartNumber; j-- {
			parts[j-1], parts[j] = parts[j], parts[j-1]
		}
	}
}

// errWriter records the error of the writer it wraps, to tell it from the download's.
type errWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	e.n += int64(n)
	if err != nil {
		e.err = err
	}
	return n, err
}

// Extract writes the archive of session to w: see the package documentation.
func (s *Store) Extract(ctx context.Context, session string, w io.Writer) error {
	if err := s.check(ctx, "Extract", session); err != nil {
		return err
	}
	key := s.Key(session)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNoSuchKey(err) {
			return s.errorf("Extract", session, "%w (GetObject: %w)", remoteauth.ErrNotFound, err)
		}
		return s.errorf("Extract", session, "GetObject: %w", err)
	}
	if err := s.download(ctx, key, out, w); err != nil {
		return s.errorf("Extract", session, "%w", err)
	}
	return nil
}

// download writes the body of out, the response to a GetObject of key, to w. If the connection
// breaks, it resumes, up to maxResumes times, with a ranged GetObject conditional on out's ETag;
// if the object was replaced or removed meanwhile, it fails with an error wrapping ErrChanged.
func (s *Store) download(ctx context.Context, key string, out *s3.GetObjectOutput, w io.Writer) error {
	etag := out.ETag
	ew := &errWriter{w: w}
	for resumes := 0; ; resumes++ {
		_, err := io.Copy(ew, out.Body)
		out.Body.Close()
		switch {
		case err == nil:
			return nil
		case ew.err != nil:
			return fmt.Errorf("writing the archive: %w", ew.err)
		case ctx.Err() != nil:
			return fmt.Errorf("%w (after %d bytes: %v)", ctx.Err(), ew.n, err)
		case resumes == maxResumes || etag == nil:
			return fmt.Errorf("reading the object after %d bytes: %w", ew.n, err)
		}
		readErr := err
		// Resume where the download broke, from the same archive only.
		out, err = s.client.GetObject(ctx, &s3.GetObjectInput{
			Bucket:  &s.bucket,
			Key:     &key,
			Range:   aws.String(fmt.Sprintf("bytes=%d-", ew.n)),
			IfMatch: etag,
		})
		if err != nil {
			if isPreconditionFailed(err) || isNoSuchKey(err) {
				return fmt.Errorf("%w after %d bytes were written (%v; resuming: %v)", ErrChanged, ew.n, readErr, err)
			}
			return fmt.Errorf("reading the object after %d bytes: %w (resuming: %v)", ew.n, readErr, err)
		}
	}
}
