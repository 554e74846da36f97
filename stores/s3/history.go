package s3store

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wwebstore/wwebstore/remoteauth"
)

const (
	// HistorySuffix follows a session's key to name the folder of its kept archives:
	// <Key(session)>.history/, as in sessions/RemoteAuth-alice.zip.history/. No session key
	// lies there: a session key has no "/" after the prefix.
	HistorySuffix = ".history"
	// MetadataID is the user metadata (x-amz-meta-wwebstore-id) in which Save records the ID of
	// the archive it uploads.
	MetadataID = "wwebstore-id"

	// idLen is the length of an archive ID: lowercase hexadecimal digits.
	idLen = 16
	// seqLen is the length of the decimal numbers in a kept archive's key.
	seqLen = 19
	// maxSnapshots bounds how often Versions reads the current archive and the history again
	// when a Save replaced the current archive while it listed.
	maxSnapshots = 3
	// maxCopies bounds how often Save copies the current archive into the history again when
	// another process replaced it during the copy.
	maxCopies = 3
)

// The limits of the server-side copy that keeps the current archive. Variables, so that a test
// can make them small enough to exercise UploadPartCopy.
var (
	// maxCopySize is the largest object that one CopyObject copies (S3's limit: 5 GiB); a
	// larger one is copied with a multipart upload of UploadPartCopy parts.
	maxCopySize int64 = 5 << 30
	// copyPartSize is the size of those parts (at least what MaxParts parts need).
	copyPartSize int64 = 1 << 30
)

var _ remoteauth.History = (*Store)(nil)

// archive is an object that holds an archive of a session: the current one, or a kept one.
type archive struct {
	key   string
	etag  *string // the current archive's only
	id    string
	size  int64
	saved time.Time
	seq   int64  // a kept archive's only: when it was kept, in nanoseconds since 1970, the order of the history
	lease uint64 // the current archive's only: the token of the lease whose Save wrote it (MetadataLease), 0 if none
}

// newID returns a new archive ID: idLen random hexadecimal digits.
func newID() string {
	var b [idLen / 2]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	return len(id) == idLen && strings.Trim(id, "0123456789abcdef") == ""
}

// archiveID returns the ID of an object at a session's key: the one that Save recorded in its
// MetadataID, or, for an object that another program (wwebjs-aws-s3, or s3store before it kept
// history) wrote, one derived from its ETag and Last-Modified, which do not change while the
// object stays.
func archiveID(meta map[string]string, etag *string, modified *time.Time) string {
	for k, v := range meta {
		if strings.EqualFold(k, MetadataID) && validID(v) {
			return v
		}
	}
	h := sha256.Sum256([]byte(aws.ToString(etag) + "\n" + aws.ToTime(modified).UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(h[:idLen/2])
}

// historyPrefix returns the prefix of session's kept archives.
func (s *Store) historyPrefix(session string) string { return s.Key(session) + HistorySuffix + "/" }

// keptKey returns the key under which a kept archive goes: <seq>_<saved>_<id>.zip in the
// session's history folder, seq and saved (its Last-Modified as the current archive) in
// nanoseconds since 1970, each 19 decimal digits.
func (s *Store) keptKey(session string, seq int64, a *archive) string {
	var saved int64
	if !a.saved.IsZero() {
		saved = a.saved.UnixNano()
	}
	return fmt.Sprintf("%s%0*d_%0*d_%s.zip", s.historyPrefix(session), seqLen, seq, seqLen, saved, a.id)
}

// parseKept parses the name of an object in a history folder; ok is false for a name that
// keptKey does not make.
func parseKept(name string) (a archive, ok bool) {
	base, ok := strings.CutSuffix(name, ".zip")
	fields := strings.Split(base, "_")
	if !ok || len(fields) != 3 || !validID(fields[2]) {
		return a, false
	}
	seq, ok1 := parseDigits(fields[0])
	saved, ok2 := parseDigits(fields[1])
	if !ok1 || !ok2 {
		return a, false
	}
	a = archive{id: fields[2], seq: seq}
	if saved != 0 {
		a.saved = time.Unix(0, saved)
	}
	return a, true
}

func parseDigits(s string) (int64, bool) {
	if len(s) != seqLen || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// head returns the current archive of session, or nil when it has none. A 404 of the HEAD is
// confirmed with a GetObject, as in SessionExists: a missing bucket is an error.
func (s *Store) head(ctx context.Context, session string) (*archive, error) {
	key := s.Key(session)
	h, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err == nil {
		return &archive{key: key, etag: h.ETag, id: archiveID(h.Metadata, h.ETag, h.LastModified), size: aws.ToInt64(h.ContentLength), saved: aws.ToTime(h.LastModified), lease: archiveLease(h.Metadata)}, nil
	}
	if !isNotFound(err) {
		return nil, fmt.Errorf("HeadObject: %w", err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	switch {
	case err == nil: // saved in the meantime
		out.Body.Close()
		return current(key, out), nil
	case isNoSuchKey(err):
		return nil, nil
	default:
		return nil, fmt.Errorf("GetObject after a 404 from HeadObject: %w", err)
	}
}

// current describes the current archive from the response to its GetObject.
func current(key string, out *s3.GetObjectOutput) *archive {
	return &archive{key: key, etag: out.ETag, id: archiveID(out.Metadata, out.ETag, out.LastModified), size: aws.ToInt64(out.ContentLength), saved: aws.ToTime(out.LastModified), lease: archiveLease(out.Metadata)}
}

// listHistory lists the objects in session's history folder: the kept archives, newest (the
// last kept) first, and the keys of the other objects there.
func (s *Store) listHistory(ctx context.Context, session string) (kept []archive, others []string, err error) {
	prefix := s.historyPrefix(session)
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("ListObjectsV2 %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			a, ok := parseKept(strings.TrimPrefix(key, prefix))
			if !ok {
				others = append(others, key)
				continue
			}
			a.key, a.size = key, aws.ToInt64(o.Size)
			kept = append(kept, a)
		}
	}
	slices.SortFunc(kept, func(a, b archive) int { return cmp.Compare(b.seq, a.seq) })
	return kept, others, nil
}

// visible returns the kept archives that Versions lists after the current archive with ID
// cur: the newest Keep-1 of those with other IDs, each ID once (the last kept copy). A copy of
// the current archive is what a Save that failed after keeping it left.
func (s *Store) visible(cur string, kept []archive) []archive {
	seen := map[string]bool{cur: true}
	var list []archive
	for _, a := range kept {
		if len(list) == s.keep-1 {
			break
		}
		if !seen[a.id] {
			seen[a.id] = true
			list = append(list, a)
		}
	}
	return list
}

// snapshot returns the current archive of session (nil if none) and the kept archives that
// Versions lists after it. When the current archive changes while the history is listed (a
// Save), it reads both again, at most maxSnapshots times.
func (s *Store) snapshot(ctx context.Context, session string) (*archive, []archive, error) {
	cur, err := s.head(ctx, session)
	for range maxSnapshots {
		if err != nil || cur == nil || s.keep == 1 {
			return cur, nil, err
		}
		kept, _, err := s.listHistory(ctx, session)
		if err != nil {
			return nil, nil, err
		}
		again, err := s.head(ctx, session)
		if err != nil || again == nil {
			return again, nil, err
		}
		if again.id == cur.id {
			return cur, s.visible(cur.id, kept), nil
		}
		cur = again
	}
	// Saved again every time: list once more, for the archive that is current now.
	kept, _, err := s.listHistory(ctx, session)
	if err != nil {
		return nil, nil, err
	}
	return cur, s.visible(cur.id, kept), nil
}

// Versions lists the kept archives of session, newest first: the current archive (its
// LastModified as Saved), then at most Options.Keep-1 kept ones from its history folder, in the
// order in which Saves replaced them (each with the LastModified it had as the current
// archive). A session without a current archive has none, whatever its history folder holds.
// It costs a HeadObject, a ListObjectsV2 and another HeadObject (more when a Save replaces the
// archive meanwhile), and needs s3:ListBucket. It implements remoteauth.History.
func (s *Store) Versions(ctx context.Context, session string) ([]remoteauth.ArchiveVersion, error) {
	if err := s.check(ctx, "Versions", session); err != nil {
		return nil, err
	}
	cur, kept, err := s.snapshot(ctx, session)
	if err != nil {
		return nil, s.errorf("Versions", session, "%w", err)
	}
	if cur == nil {
		return nil, nil
	}
	versions := []remoteauth.ArchiveVersion{{ID: cur.id, Size: cur.size, Saved: cur.saved}}
	for _, a := range kept {
		versions = append(versions, remoteauth.ArchiveVersion{ID: a.id, Size: a.size, Saved: a.saved})
	}
	return versions, nil
}

// ExtractVersion writes the kept archive of session with that ID to w, as Extract does
// (resuming a broken download of the same object). An ID that Versions does not list (any more)
// gives an error wrapping remoteauth.ErrNotFound, with nothing written. It implements
// remoteauth.History.
func (s *Store) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	const op = "ExtractVersion"
	if err := s.check(ctx, op, session); err != nil {
		return err
	}
	if !validID(id) {
		return s.errorf(op, session, "archive %q: %w: not an ID that s3store makes (%d hexadecimal digits)", id, remoteauth.ErrNotFound, idLen)
	}
	key := s.Key(session)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	switch {
	case isNoSuchKey(err):
		return s.errorf(op, session, "archive %s: %w: the session has no archive (GetObject: %w)", id, remoteauth.ErrNotFound, err)
	case err != nil:
		return s.errorf(op, session, "GetObject: %w", err)
	}
	cur := current(key, out)
	if cur.id == id {
		if err := s.download(ctx, key, out, w); err != nil {
			return s.errorf(op, session, "archive %s: %w", id, err)
		}
		return nil
	}
	out.Body.Close()
	if s.keep == 1 {
		return s.errorf(op, session, "archive %s: %w (the store keeps no history: Keep is 1)", id, remoteauth.ErrNotFound)
	}
	// Save keeps the current archive before it replaces it: an archive that was current
	// before the GetObject above is in the history folder by now, unless evicted.
	kept, _, err := s.listHistory(ctx, session)
	if err != nil {
		return s.errorf(op, session, "%w", err)
	}
	listed := s.visible(cur.id, kept)
	i := slices.IndexFunc(listed, func(a archive) bool { return a.id == id })
	if i < 0 {
		return s.errorf(op, session, "archive %s: %w", id, remoteauth.ErrNotFound)
	}
	k := listed[i].key
	out, err = s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	switch {
	case isNoSuchKey(err): // evicted since the listing
		return s.errorf(op, session, "archive %s: %w: evicted by a Save (GetObject %s: %w)", id, remoteauth.ErrNotFound, k, err)
	case err != nil:
		return s.errorf(op, session, "archive %s: GetObject %s: %w", id, k, err)
	}
	if err := s.download(ctx, k, out, w); err != nil {
		return s.errorf(op, session, "archive %s (%s): %w", id, k, err)
	}
	return nil
}

// lock takes the in-process lock of session, which orders the commits of its Saves; it returns
// the function that releases it.
func (s *Store) lock(ctx context.Context, session string) (func(), error) {
	h := fnv.New32a()
	h.Write([]byte(session))
	c := s.locks[h.Sum32()%uint32(len(s.locks))]
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for another Save of the session: %w", ctx.Err())
	}
}

// commit makes the uploaded archive with ID id session's current archive: under the session's
// lock, it keeps the current archive in the history folder (Keep above 1), then calls put (the
// PutObject or CompleteMultipartUpload that replaces the current archive), then evicts the kept
// archives beyond Keep. An error before put, or from put, fails the Save and leaves the
// archives that Versions lists as they were; eviction's failures do not fail it (see rotate).
//
// With a fence (a Lease's Save), it reads the current archive (with its ETag), then checks the
// lease (fence.check), then calls put with the condition that the archive is still the one it
// read (If-Match its ETag, or If-None-Match * when there was none): see the package
// documentation, Leases. When the condition fails (412, or 409 ConditionalRequestConflict), it
// starts again, at most maxCommits times. Without a fence, put gets the zero condition.
func (s *Store) commit(ctx context.Context, session, id string, f *fence, put func(c condition) error) error {
	unlock, err := s.lock(ctx, session)
	if err != nil {
		return err
	}
	defer unlock()
	for try := 1; ; try++ {
		var cur *archive
		if s.keep > 1 {
			if cur, err = s.keepCurrent(ctx, session); err != nil {
				return err
			}
		} else if f != nil {
			if cur, err = s.head(ctx, session); err != nil {
				return fmt.Errorf("reading the current archive: %w", err)
			}
		}
		var c condition
		if f != nil {
			if err := f.check(ctx, cur); err != nil {
				return err
			}
			c = conditionOn(cur)
		}
		err := put(c)
		if f != nil && isConditionFailed(err) && try < maxCommits {
			continue // replaced meanwhile: check the lease again
		}
		if err != nil {
			return err
		}
		s.rotate(ctx, session, id)
		return nil
	}
}

// keepCurrent copies session's current archive into its history folder, unless a copy is
// there already (a Save that failed after copying it), with a server-side copy conditional on
// the ETag that was read, so that the copy holds the archive its key names; if another process
// replaced the archive meanwhile, it reads it again, at most maxCopies times. Without a current
// archive, it removes what the history folder holds: an interrupted Delete, or a Delete by
// wwebjs-aws-s3, left it, and it must not become the history of the new archive. It returns the
// current archive it kept (nil if none), whose ETag a fenced commit makes its condition.
func (s *Store) keepCurrent(ctx context.Context, session string) (*archive, error) {
	for try := 1; ; try++ {
		cur, err := s.head(ctx, session)
		if err != nil {
			return nil, fmt.Errorf("keeping the previous archive: %w", err)
		}
		kept, others, err := s.listHistory(ctx, session)
		if err != nil {
			return nil, fmt.Errorf("keeping the previous archive: %w", err)
		}
		if cur == nil {
			if err := s.deleteKept(ctx, kept, others); err != nil {
				return nil, fmt.Errorf("removing the history of a deleted archive: %w", err)
			}
			return nil, nil
		}
		if slices.ContainsFunc(kept, func(a archive) bool { return a.id == cur.id }) {
			return cur, nil
		}
		seq := time.Now().UnixNano()
		if len(kept) > 0 {
			seq = max(seq, kept[0].seq+1)
		}
		err = s.copyArchive(ctx, cur, s.keptKey(session, seq, cur))
		if err == nil || !isPreconditionFailed(err) || try == maxCopies {
			if err != nil {
				return nil, fmt.Errorf("keeping the previous archive %s: %w", cur.id, err)
			}
			return cur, nil
		}
	}
}

// copyArchive copies the current archive cur to dst, server-side, if its ETag is still cur's:
// with CopyObject up to maxCopySize (5 GiB, S3's limit), with a multipart upload of
// UploadPartCopy parts above.
func (s *Store) copyArchive(ctx context.Context, cur *archive, dst string) error {
	src := (&url.URL{Path: s.bucket + "/" + cur.key}).EscapedPath()
	if cur.size <= maxCopySize {
		_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:               &s.bucket,
			Key:                  &dst,
			CopySource:           &src,
			CopySourceIfMatch:    cur.etag,
			ServerSideEncryption: s.sse,
			SSEKMSKeyId:          s.kmsKeyIDPtr(),
			StorageClass:         s.class,
		})
		if err != nil {
			return fmt.Errorf("CopyObject to %s: %w", dst, err)
		}
		return nil
	}
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:               &s.bucket,
		Key:                  &dst,
		ContentType:          aws.String(ContentType),
		ServerSideEncryption: s.sse,
		SSEKMSKeyId:          s.kmsKeyIDPtr(),
		StorageClass:         s.class,
	})
	if err != nil {
		return fmt.Errorf("CreateMultipartUpload to copy to %s: %w", dst, err)
	}
	partSize := max(copyPartSize, (cur.size+MaxParts-1)/MaxParts)
	var parts []types.CompletedPart
	for off, num := int64(0), int32(1); off < cur.size && err == nil; off, num = off+partSize, num+1 {
		var out *s3.UploadPartCopyOutput
		out, err = s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket:            &s.bucket,
			Key:               &dst,
			UploadId:          created.UploadId,
			PartNumber:        aws.Int32(num),
			CopySource:        &src,
			CopySourceIfMatch: cur.etag,
			CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", off, min(off+partSize, cur.size)-1)),
		})
		if err != nil {
			err = fmt.Errorf("UploadPartCopy %d to %s: %w", num, dst, err)
			break
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.CopyPartResult.ETag})
	}
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &s.bucket,
			Key:             &dst,
			UploadId:        created.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if err == nil {
			return nil
		}
		err = fmt.Errorf("CompleteMultipartUpload of the copy to %s: %w", dst, err)
	}
	if abortErr := s.abort(ctx, dst, created.UploadId); abortErr != nil {
		return fmt.Errorf("%w; and AbortMultipartUpload %s failed, its parts stay until a lifecycle rule removes them: %w", err, aws.ToString(created.UploadId), abortErr)
	}
	return err
}

// isPreconditionFailed reports whether err is S3's 412 answer to a copy whose source no longer
// has the ETag it was made for.
func isPreconditionFailed(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

// rotate runs after the archive with ID id became session's current one: it deletes the kept
// archives beyond Keep (with Keep 1, everything in the history folder). Its failures are not
// the Save's, whose archive is in place: what it leaves is not listed, and the next Save
// deletes it.
func (s *Store) rotate(ctx context.Context, session, id string) {
	kept, others, err := s.listHistory(ctx, session)
	if err != nil {
		return
	}
	if s.keep == 1 {
		_ = s.deleteKept(ctx, kept, others) // best effort, as above
		return
	}
	listed := map[string]bool{}
	for _, a := range s.visible(id, kept) {
		listed[a.key] = true
	}
	kept = slices.DeleteFunc(kept, func(a archive) bool { return listed[a.key] })
	_ = s.deleteKept(ctx, kept, nil) // best effort, as above
}

// deleteKept deletes the kept archives and the other keys of a history folder, oldest first, so
// that an interrupted deletion leaves the newest.
func (s *Store) deleteKept(ctx context.Context, kept []archive, others []string) error {
	keys := slices.Clone(others)
	for i := len(kept) - 1; i >= 0; i-- {
		keys = append(keys, kept[i].key)
	}
	for _, key := range keys {
		_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
		if err != nil && !isNoSuchKey(err) {
			return fmt.Errorf("DeleteObject %s: %w", key, err)
		}
	}
	return nil
}
