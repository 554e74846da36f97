package s3store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/wwebstore/wwebstore/remoteauth"
)

const (
	// LeaseSuffix follows a session's key to name its lease object: <Key(session)>.lease, as in
	// sessions/RemoteAuth-alice.zip.lease. No session key ends so (a session key ends in
	// ".zip"), and List skips it.
	LeaseSuffix = ".lease"
	// MetadataLease is the user metadata (x-amz-meta-wwebstore-lease) in which a Lease's Save
	// records its token on the archive it uploads, so that no fenced Save of an older lease
	// replaces it.
	MetadataLease = "wwebstore-lease"

	// maxLeaseRecord bounds the lease object that the store reads: a record is about 300 bytes.
	maxLeaseRecord = 64 << 10
	// maxLeaseWrites bounds how often a lease operation reads the lease object again and retries
	// its conditional write when another writer changed the object meanwhile (412, 409).
	maxLeaseWrites = 10
	// maxCommits bounds how often a fenced commit checks the lease again and retries when the
	// current archive changed between its read and the conditional write.
	maxCommits = 5
	// dateResolution is the resolution of the HTTP dates (Last-Modified, Date) by which the
	// store reads the server's clock.
	dateResolution = time.Second
)

var _ remoteauth.Leaser = (*Store)(nil)

// LeaseKey returns the key of session's lease object: Key(session)+LeaseSuffix. It does not
// check the name.
func (s *Store) LeaseKey(session string) string { return s.Key(session) + LeaseSuffix }

// leaseRecord is the JSON body of a lease object: the newest lease granted of the session.
type leaseRecord struct {
	Token uint64 `json:"token"`
	Owner string `json:"owner"`
	// TTL is the lease's duration, in nanoseconds.
	TTL time.Duration `json:"ttl"`
	// Expires is when the lease expires unless renewed, by the clock of its holder.
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

// leaseObject is a lease object as read: its record, ETag (the condition of the next write),
// and the server's clock: its Last-Modified and the Date of the response.
type leaseObject struct {
	rec      leaseRecord
	etag     *string
	modified time.Time
	date     time.Time // zero if the server sent no Date
}

// live reports whether the lease is live at now (this host's clock): not released and not
// expired, by its holder's clock or by the server's. The server's clock has whole seconds: the
// lease was written in [modified, modified+1s) and the response left in [date, date+1s), so it
// has surely expired by the server's clock only once date ≥ modified + ttl + 1s.
func (o *leaseObject) live(now time.Time) bool {
	if o.rec.Released {
		return false
	}
	if now.Before(o.rec.Expires) {
		return true
	}
	return !o.date.IsZero() && o.date.Before(o.modified.Add(o.rec.TTL+dateResolution))
}

// readLease returns session's lease object, or nil when it has none.
func (s *Store) readLease(ctx context.Context, session string) (*leaseObject, error) {
	key := s.LeaseKey(session)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if isNoSuchKey(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("GetObject %s: %w", key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, maxLeaseRecord+1))
	if err != nil {
		return nil, fmt.Errorf("reading the lease object %s: %w", key, err)
	}
	o := &leaseObject{etag: out.ETag, modified: aws.ToTime(out.LastModified)}
	if len(body) > maxLeaseRecord {
		return nil, fmt.Errorf("the lease object %s is longer than %d bytes: it was not written by s3store; delete it", key, maxLeaseRecord)
	}
	if err := json.Unmarshal(body, &o.rec); err != nil || o.rec.Token == 0 {
		return nil, fmt.Errorf("the lease object %s is not an s3store lease record (%v); delete it to reset the session's leases", key, err)
	}
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		if d, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
			o.date = d
		}
	}
	return o, nil
}

// writeLease writes rec as session's lease object, if the object is still prev (If-Match its
// ETag), or, with prev nil, if there is none (If-None-Match: *). A write that lost a race with
// another writer of the object fails with an error for which isConditionFailed is true.
func (s *Store) writeLease(ctx context.Context, session string, rec leaseRecord, prev *leaseObject) error {
	body, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding the lease record: %w", err)
	}
	key := s.LeaseKey(session)
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	}
	if prev == nil {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = prev.etag
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("PutObject %s: %w", key, err)
	}
	return nil
}

// isConditionFailed reports whether err is S3's answer to a conditional write that lost: 412
// Precondition Failed (the object is not, or no longer, the one the condition names), or 409
// ConditionalRequestConflict (another conditional write of the key was under way).
func isConditionFailed(err error) bool {
	if err == nil {
		return false
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ConditionalRequestConflict" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

// leaseOp runs step, which reads the lease object and writes it conditionally, again while its
// write loses a race with another writer, at most maxLeaseWrites times, with a short backoff.
func leaseOp(ctx context.Context, step func() error) error {
	wait := 10 * time.Millisecond
	for try := 1; ; try++ {
		err := step()
		if !isConditionFailed(err) {
			return err
		}
		if try == maxLeaseWrites {
			return fmt.Errorf("the lease object kept changing during %d attempts (other writers?): %w", try, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retrying after: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// AcquireLease grants owner a lease of session for ttl, unless another lease of it is live: then
// the error wraps a *remoteauth.LeaseHeldError naming the holder and its expiry (by the holder's
// clock). The lease is the object LeaseKey(session), written with conditional PutObjects
// (If-None-Match: * to create it, If-Match: <ETag> to take it over): of concurrent calls, in one
// process or many, exactly one wins. See the package documentation, Leases, for the clocks and
// what the fence guarantees. It implements remoteauth.Leaser.
func (s *Store) AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (remoteauth.Lease, error) {
	const op = "AcquireLease"
	if err := s.check(ctx, op, session); err != nil {
		return nil, err
	}
	if err := remoteauth.ValidateLeaseRequest(owner, ttl); err != nil {
		return nil, s.errorf(op, session, "%w", err)
	}
	var token uint64
	err := leaseOp(ctx, func() error {
		cur, err := s.readLease(ctx, session)
		if err != nil {
			return err
		}
		token = 1
		if cur != nil {
			if cur.live(time.Now()) {
				return &remoteauth.LeaseHeldError{Session: session, Owner: cur.rec.Owner, Expires: cur.rec.Expires}
			}
			token = cur.rec.Token + 1
		}
		return s.writeLease(ctx, session, leaseRecord{Token: token, Owner: owner, TTL: ttl, Expires: time.Now().Add(ttl)}, cur)
	})
	if err != nil {
		return nil, s.errorf(op, session, "%w", err)
	}
	return &lease{s: s, session: session, token: token, ttl: ttl}, nil
}

// lease is a lease granted by a Store.
type lease struct {
	s       *Store
	session string
	token   uint64
	ttl     time.Duration
}

func (l *lease) Token() uint64 { return l.token }

// lost returns the error of a lease that is no longer the newest or was released, given the
// record that says so (nil: the lease object is gone, deleted by hand).
func (l *lease) lost(rec *leaseRecord) error {
	switch {
	case rec == nil:
		return fmt.Errorf("lease %d: %w (the lease object %s is gone)", l.token, remoteauth.ErrLeaseLost, l.s.LeaseKey(l.session))
	case rec.Token != l.token:
		return fmt.Errorf("lease %d: %w (lease %d was granted to %q after it)", l.token, remoteauth.ErrLeaseLost, rec.Token, rec.Owner)
	default:
		return fmt.Errorf("lease %d: %w (it was released)", l.token, remoteauth.ErrLeaseLost)
	}
}

// mine reports whether cur is l, not released.
func (l *lease) mine(cur *leaseObject) bool {
	return cur != nil && cur.rec.Token == l.token && !cur.rec.Released
}

// Renew extends the lease by its ttl from now (this host's clock for the record; the server's
// Last-Modified for its own check), unless it was lost.
func (l *lease) Renew(ctx context.Context) error {
	const op = "Renew the lease of"
	if err := l.s.check(ctx, op, l.session); err != nil {
		return err
	}
	err := leaseOp(ctx, func() error {
		cur, err := l.s.readLease(ctx, l.session)
		if err != nil {
			return err
		}
		if !l.mine(cur) {
			if cur == nil {
				return l.lost(nil)
			}
			return l.lost(&cur.rec)
		}
		rec := cur.rec
		rec.Expires = time.Now().Add(l.ttl)
		return l.s.writeLease(ctx, l.session, rec, cur)
	})
	if err != nil {
		return l.s.errorf(op, l.session, "%w", err)
	}
	return nil
}

// Release ends the lease, if it is still the newest and not released; otherwise it does
// nothing. The lease object stays, marked released: it keeps the token.
func (l *lease) Release(ctx context.Context) error {
	const op = "Release the lease of"
	if err := l.s.check(ctx, op, l.session); err != nil {
		return err
	}
	err := leaseOp(ctx, func() error {
		cur, err := l.s.readLease(ctx, l.session)
		if err != nil || !l.mine(cur) {
			return err
		}
		rec := cur.rec
		rec.Released = true
		return l.s.writeLease(ctx, l.session, rec, cur)
	})
	if err != nil {
		return l.s.errorf(op, l.session, "%w", err)
	}
	return nil
}

// Save is Store.Save fenced by the lease: the archive carries the token (MetadataLease), and it
// becomes current only with a conditional write on the archive that the commit read after
// checking that no newer archive is there: see the package documentation, Leases.
func (l *lease) Save(ctx context.Context, r io.Reader) error {
	if err := l.s.check(ctx, "Save", l.session); err != nil {
		return err
	}
	return l.s.save(ctx, l.session, r, &fence{l: l})
}

// Delete is Store.Delete fenced by the lease: under the session's lock in this process, it reads
// the current archive, checks the lease, and deletes the archive with DeleteObject If-Match its
// ETag, then the history folder.
func (l *lease) Delete(ctx context.Context) error {
	const op = "Delete"
	s, session := l.s, l.session
	if err := s.check(ctx, op, session); err != nil {
		return err
	}
	unlock, err := s.lock(ctx, session)
	if err != nil {
		return s.errorf(op, session, "%w", err)
	}
	defer unlock()
	f := &fence{l: l}
	for try := 1; ; try++ {
		cur, err := s.head(ctx, session)
		if err != nil {
			return s.errorf(op, session, "reading the current archive: %w", err)
		}
		if err := f.check(ctx, cur); err != nil {
			return s.errorf(op, session, "%w", err)
		}
		if cur == nil {
			return s.deleteRest(ctx, session, nil)
		}
		_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &cur.key, IfMatch: cur.etag})
		if isConditionFailed(err) && try < maxCommits {
			continue // replaced meanwhile: check the lease again
		}
		return s.deleteRest(ctx, session, err)
	}
}

// fence is what a fenced commit checks: the lease l.
type fence struct{ l *lease }

// check returns an error wrapping ErrLeaseLost unless the lease is still the session's newest
// and not released, and cur, the current archive (nil if none), was not written under a newer
// lease.
func (f *fence) check(ctx context.Context, cur *archive) error {
	if cur != nil && cur.lease > f.l.token {
		return fmt.Errorf("lease %d: %w (the current archive was saved under lease %d)", f.l.token, remoteauth.ErrLeaseLost, cur.lease)
	}
	o, err := f.l.s.readLease(ctx, f.l.session)
	if err != nil {
		return fmt.Errorf("checking lease %d: %w", f.l.token, err)
	}
	if !f.l.mine(o) {
		if o == nil {
			return f.l.lost(nil)
		}
		return f.l.lost(&o.rec)
	}
	return nil
}

// metadata returns the user metadata of an archive with ID id: MetadataID, and with a fence,
// MetadataLease. f may be nil (an unfenced Save).
func (f *fence) metadata(id string) map[string]string {
	m := map[string]string{MetadataID: id}
	if f != nil {
		m[MetadataLease] = strconv.FormatUint(f.l.token, 10)
	}
	return m
}

// condition is the precondition of the write that makes an archive current: none (an unfenced
// Save), If-Match the ETag of the archive that was read, or If-None-Match: * when there was none.
type condition struct{ ifMatch, ifNoneMatch *string }

func conditionOn(cur *archive) condition {
	if cur == nil {
		return condition{ifNoneMatch: aws.String("*")}
	}
	return condition{ifMatch: cur.etag}
}

// archiveLease returns the lease token recorded in an archive's user metadata, 0 if none.
func archiveLease(meta map[string]string) uint64 {
	for k, v := range meta {
		if strings.EqualFold(k, MetadataLease) {
			if n, err := strconv.ParseUint(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return 0
}
