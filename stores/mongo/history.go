package mongostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Versions lists the kept archives of session, newest first: the archive (the newest revision
// named "<session>.zip"), then at most Options.Keep-1 revisions older than it, retired or not,
// ordered by (uploadDate, _id). An ID is the revision's ObjectID in hex; Saved is its
// uploadDate. A session without an archive has none, whatever retired revisions its bucket
// holds. It makes two queries. It implements remoteauth.History.
func (s *Store) Versions(ctx context.Context, session string) ([]remoteauth.ArchiveVersion, error) {
	bk, err := s.open("list versions of", session)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap("list versions of", session, err)
	}
	list, err := s.kept(ctx, bk, session)
	if err != nil {
		return nil, wrap("list versions of", session, err)
	}
	var versions []remoteauth.ArchiveVersion
	for _, d := range list {
		versions = append(versions, remoteauth.ArchiveVersion{ID: d.ID.Hex(), Size: d.Length, Saved: d.UploadDate.Time()})
	}
	return versions, nil
}

// ExtractVersion writes the kept archive of session with that ID (as Versions lists it) to w,
// checking chunk numbers, sizes and the total length as Extract does. When session keeps no
// archive with that ID, or the revision is deleted (evicted) before its first byte is read, it
// returns an error wrapping remoteauth.ErrNotFound and writes nothing. It implements
// remoteauth.History.
func (s *Store) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	bk, err := s.open("extract", session)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return wrap("extract", session, err)
	}
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil || oid.Hex() != id {
		return wrap("extract", session, fmt.Errorf("archive %q: not an ID that mongostore makes (an ObjectID in 24 lowercase hex digits): %w", id, remoteauth.ErrNotFound))
	}
	list, err := s.kept(ctx, bk, session)
	if err != nil {
		return wrap("extract", session, fmt.Errorf("archive %s: %w", id, err))
	}
	i := slices.IndexFunc(list, func(d fileDoc) bool { return d.ID == oid })
	if i < 0 {
		return wrap("extract", session, fmt.Errorf("archive %s: %w", id, remoteauth.ErrNotFound))
	}
	cw := &countingWriter{w: w}
	if err := s.download(ctx, bk, list[i], cw); err != nil {
		if cw.n == 0 && errors.Is(err, remoteauth.ErrCorruptArchive) {
			// Its chunks may have been deleted since the listing: a Save evicted it.
			n, cerr := bk.files.CountDocuments(ctx, bson.D{{Key: "_id", Value: oid}}, options.Count().SetLimit(1))
			if cerr == nil && n == 0 {
				return wrap("extract", session, fmt.Errorf("archive %s: %w (evicted while it was read)", id, remoteauth.ErrNotFound))
			}
		}
		return wrap("extract", session, fmt.Errorf("archive %s: %w", id, err))
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// kept returns the revisions of session that Versions lists, newest first, at most Keep. It
// finds the archive first (what Extract reads), then the revisions not newer than it under
// either name: a revision that a concurrent Save renames is found under one name or the other,
// and one that a concurrent Save adds is newer, so the listing is the one of before that Save.
// If the archive is deleted between the two queries (a concurrent Delete), it returns nil.
func (s *Store) kept(ctx context.Context, bk *bucket, session string) ([]fileDoc, error) {
	cur, err := newest(ctx, bk, session)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding the newest revision: %w", err)
	}
	list, err := revisions(ctx, bk, session, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "uploadDate", Value: bson.D{{Key: "$lt", Value: cur.UploadDate}}}},
		bson.D{{Key: "uploadDate", Value: cur.UploadDate}, {Key: "_id", Value: bson.D{{Key: "$lte", Value: cur.ID}}}},
	}}})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 || list[0].ID != cur.ID {
		return nil, nil
	}
	return list[:min(len(list), s.keep)], nil
}

// revisions returns the session's revisions, current and retired, that match filter, newest
// first by (uploadDate, _id), each once. It reads files documents only, without the chunks.
func revisions(ctx context.Context, bk *bucket, session string, filter bson.D) ([]fileDoc, error) {
	f := append(bson.D{{Key: "filename", Value: bson.D{{Key: "$in", Value: bson.A{FileName(session), retiredName(session)}}}}}, filter...)
	cur, err := bk.files.Find(ctx, f, options.Find().SetProjection(fileDocProjection))
	if err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	var list []fileDoc
	if err := cur.All(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	// Sorted here rather than by the server: a sorted plan may merge the two names' index
	// ranges, and miss a revision that a concurrent Save renames from one to the other. A plain
	// scan finds it once or twice; twice is set right by Compact.
	slices.SortFunc(list, func(a, b fileDoc) int { return -compareRevisions(a, b) })
	return slices.CompactFunc(list, func(a, b fileDoc) bool { return a.ID == b.ID }), nil
}

// compareRevisions orders revisions by (uploadDate, _id), as GridFS readers pick the newest.
func compareRevisions(a, b fileDoc) int {
	if a.UploadDate != b.UploadDate {
		if a.UploadDate < b.UploadDate {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// evict deletes the session's revisions that Versions no longer lists, once they have not been
// listed for longer than the retired grace period, so that an Extract or ExtractVersion that
// chose one before it was evicted finishes it whole:
//
//   - a revision beyond the Keep newest (from the archive on) stopped being listed when the
//     revision Keep places newer than it was saved: its uploadDate is the eviction time;
//   - a retired revision newer than the archive is what a deletion of the session's archive
//     left (wwebjs-mongo's delete, which removes "<session>.zip" only, or an interrupted
//     Delete): the archive's uploadDate is the eviction time;
//   - the retired revisions of a session without an archive are likewise left by a deletion,
//     and not listed: they are deleted at once, so that they never become the history of the
//     session's next archive.
func (s *Store) evict(ctx context.Context, bk *bucket, session string) error {
	all, err := revisions(ctx, bk, session, nil)
	if err != nil || len(all) == 0 {
		return err
	}
	// Found after the listing: a revision retired before the listing was retired for a newer
	// archive, so if no archive exists now, the session's archives were deleted since.
	cur, err := newest(ctx, bk, session)
	var gone []fileDoc
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		gone = all
	case err != nil:
		return fmt.Errorf("finding the newest revision: %w", err)
	default:
		cutoff := bson.NewDateTimeFromTime(time.Now().Add(-s.retGrace))
		i := slices.IndexFunc(all, func(d fileDoc) bool { return compareRevisions(d, cur) <= 0 })
		if i < 0 || all[i].ID != cur.ID { // a Save since the listing: the next Save evicts
			return nil
		}
		if cur.UploadDate < cutoff {
			gone = append(gone, all[:i]...)
		}
		ranked := all[i:]
		for j := s.keep; j < len(ranked); j++ {
			if ranked[j-s.keep].UploadDate < cutoff {
				gone = append(gone, ranked[j])
			}
		}
	}
	for _, d := range gone {
		if err := deleteFile(ctx, bk, d.ID); err != nil {
			return fmt.Errorf("deleting revision %s, which is no longer kept: %w", d.ID.Hex(), err)
		}
	}
	return nil
}
