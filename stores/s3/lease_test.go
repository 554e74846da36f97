package s3store_test

// Store-specific lease tests: the lease object's layout, the server's conditional writes, two
// Store values (two processes) contending, the fence through a cut connection, and a stale
// writer refused. A rolling-deploy handover of a remoteauth.Session is the storetest Lease
// group's Lease/SessionHandover.

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wwebstore/wwebstore/internal/leasetest"
	"github.com/wwebstore/wwebstore/remoteauth"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

func checkLost(t *testing.T, err error, what, session string) {
	t.Helper()
	if !errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Fatalf("%s: %v, want an error wrapping remoteauth.ErrLeaseLost", what, err)
	}
	checkNamed(t, err, session)
}

// TestLeaseLayout checks the lease object (Key(session)+".lease", a JSON record that keeps the
// token across Store.Delete), the token stamped on the archive a Lease saves, and that List and
// Versions do not see the lease object.
func TestLeaseLayout(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	st, bucket := newStore(t, s, c, &s3store.Options{Prefix: "sessions", PartSize: s3store.MinPartSize})
	const session = "RemoteAuth-alice"
	key := st.LeaseKey(session)
	if want := st.Key(session) + ".lease"; key != want || !strings.HasSuffix(key, "sessions/RemoteAuth-alice.zip.lease") {
		t.Fatalf("LeaseKey = %q, want %q under the prefix", key, want)
	}
	record := func() map[string]any {
		t.Helper()
		out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Fatalf("GetObject %s: %v", key, err)
		}
		defer out.Body.Close()
		var rec map[string]any
		if err := json.NewDecoder(out.Body).Decode(&rec); err != nil {
			t.Fatalf("the lease object is not JSON: %v", err)
		}
		return rec
	}
	a := leasetest.Acquire(t, st, session, "dyno-é", time.Minute)
	if rec := record(); rec["token"] != 1.0 || rec["owner"] != "dyno-é" || rec["ttl"] != float64(time.Minute) || rec["released"] != nil {
		t.Errorf("lease record %v, want token 1, owner dyno-é, ttl %d, not released", rec, time.Minute)
	}
	for _, size := range []int{1000, 6<<20 + 1} { // PutObject, then CompleteMultipartUpload
		data := pattern(uint64(size), size)
		if err := a.Save(t.Context(), bytes.NewReader(data)); err != nil {
			t.Fatalf("Lease.Save of %d bytes: %v", size, err)
		}
		head, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(st.Key(session))})
		if err != nil {
			t.Fatal(err)
		}
		if got := head.Metadata[s3store.MetadataLease]; got != "1" {
			t.Errorf("archive of %d bytes saved under lease 1 has %s %q, want \"1\"", size, s3store.MetadataLease, got)
		}
		if !bytes.Equal(extract(t, st, session), data) {
			t.Errorf("Extract after Lease.Save of %d bytes differs", size)
		}
	}
	if vs, err := st.Versions(t.Context(), session); err != nil || len(vs) != 2 {
		t.Errorf("Versions after two fenced Saves = %d versions, %v; want 2", len(vs), err)
	}
	if list, err := st.List(t.Context()); err != nil || len(list) != 1 || list[0].Name != session {
		t.Errorf("List = %+v, %v; want only %q (not the lease object)", list, err, session)
	}
	if err := a.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rec := record(); rec["released"] != true || rec["token"] != 1.0 {
		t.Errorf("lease record after Release %v, want token 1, released", rec)
	}
	if err := st.Delete(t.Context(), session); err != nil {
		t.Fatal(err)
	}
	if rec := record(); rec["token"] != 1.0 {
		t.Errorf("Store.Delete changed the lease record to %v", rec)
	}
	if b := leasetest.Acquire(t, st, session, "next", time.Minute); b.Token() != 2 {
		t.Errorf("token after a Delete = %d, want 2 (tokens never reset)", b.Token())
	}
}

// TestConditionalWrites checks that the server refuses the conditional writes the leases rely
// on: PutObject and CompleteMultipartUpload with If-None-Match: * on an existing key and with
// If-Match a stale ETag.
func TestConditionalWrites(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	bucket, prefix := newBucket(t, s, c)
	key := strings.TrimPrefix(prefix+"/obj", "/")
	put := func(body string, match, noneMatch *string) (*s3.PutObjectOutput, error) {
		return c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body), IfMatch: match, IfNoneMatch: noneMatch})
	}
	first, err := put("one", nil, aws.String("*"))
	if err != nil {
		t.Fatalf("PutObject If-None-Match * of a new key: %v", err)
	}
	if _, err := put("two", nil, aws.String("*")); !s3store.IsConditionFailed(err) {
		t.Errorf("PutObject If-None-Match * of an existing key: %v, want 412", err)
	}
	second, err := put("two", first.ETag, nil)
	if err != nil {
		t.Fatalf("PutObject If-Match the current ETag: %v", err)
	}
	if _, err := put("three", first.ETag, nil); !s3store.IsConditionFailed(err) {
		t.Errorf("PutObject If-Match a stale ETag: %v, want 412", err)
	}
	created, err := c.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	part, err := c.UploadPart(t.Context(), &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: created.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("four")})
	if err != nil {
		t.Fatal(err)
	}
	complete := func(match, noneMatch *string) error {
		_, err := c.CompleteMultipartUpload(t.Context(), &s3.CompleteMultipartUploadInput{
			Bucket: &bucket, Key: &key, UploadId: created.UploadId, IfMatch: match, IfNoneMatch: noneMatch,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}},
		})
		return err
	}
	if err := complete(nil, aws.String("*")); !s3store.IsConditionFailed(err) {
		t.Errorf("CompleteMultipartUpload If-None-Match * of an existing key: %v, want 412", err)
	}
	if err := complete(first.ETag, nil); !s3store.IsConditionFailed(err) {
		t.Errorf("CompleteMultipartUpload If-Match a stale ETag: %v, want 412", err)
	}
	if err := complete(second.ETag, nil); err != nil {
		t.Errorf("CompleteMultipartUpload If-Match the current ETag, after two refusals: %v", err)
	}
	// DeleteObject If-Match is not checked: MinIO (2026-02) ignores it and deletes, so the
	// package documentation says a fenced Delete is a check, then the delete.
}

// TestLeaseTwoStores: two Store values on one bucket, as two processes, contend for a session:
// one wins, the other is told who holds it; after a Release the other takes over and the
// first one's Save is refused.
func TestLeaseTwoStores(t *testing.T) {
	s := s3Server(t)
	c1, c2 := s.client(nil), s.client(nil)
	st1, bucket := newStore(t, s, c1, nil)
	st2, err := s3store.New(t.Context(), c2, bucket, &s3store.Options{Prefix: strings.TrimSuffix(st1.Key("x"), "x.zip"), PartSize: s3store.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	const session = "RemoteAuth-contended"
	for round := range 3 {
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			won    []remoteauth.Lease
			owners []string
			held   []string
		)
		for i, st := range []*s3store.Store{st1, st2, st1, st2} {
			owner := []string{"p1", "p2", "p1b", "p2b"}[i]
			wg.Go(func() {
				lease, err := st.AcquireLease(t.Context(), session, owner, time.Hour)
				mu.Lock()
				defer mu.Unlock()
				var h *remoteauth.LeaseHeldError
				switch {
				case err == nil:
					won, owners = append(won, lease), append(owners, owner)
				case errors.As(err, &h):
					held = append(held, h.Owner)
				default:
					t.Errorf("AcquireLease(%q): %v", owner, err)
				}
			})
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d AcquireLease calls won (%q), want 1", round, len(won), owners)
		}
		for _, h := range held {
			if h != owners[0] {
				t.Errorf("round %d: a loser was told %q holds the session, but %q won", round, h, owners[0])
			}
		}
		data := pattern(uint64(round), 100<<10)
		if err := won[0].Save(t.Context(), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(extract(t, st2, session), data) || !bytes.Equal(extract(t, st1, session), data) {
			t.Errorf("round %d: the stores do not both read the winner's archive", round)
		}
		if err := won[0].Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkLost(t, won[0].Save(t.Context(), bytes.NewReader(pattern(9, 1000))), "Save after Release", session)
	}
}

// TestLeaseStaleWriterRefused: a process whose lease expired (paused) and was taken over by
// another process cannot overwrite or delete the newer archive, whether the newer holder has
// saved or not; an archive stamped with a newer token than the writer's is never replaced.
func TestLeaseStaleWriterRefused(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	old, bucket := newStore(t, s, c, nil)
	next, err := s3store.New(t.Context(), s.client(nil), bucket, &s3store.Options{Prefix: strings.TrimSuffix(old.Key("x"), "x.zip")})
	if err != nil {
		t.Fatal(err)
	}
	const session = "RemoteAuth-stale"
	a := leasetest.Acquire(t, old, session, "paused", 100*time.Millisecond)
	prev := pattern(1, 5000)
	if err := a.Save(t.Context(), bytes.NewReader(prev)); err != nil {
		t.Fatal(err)
	}
	b := leasetest.TakeOver(t, next, session, "new", time.Hour)
	// Taken over, not yet saved by the new holder: the old one is refused all the same.
	checkLost(t, a.Save(t.Context(), bytes.NewReader(pattern(2, 6<<20))), "stale multipart Save before the new holder saved", session)
	checkLost(t, a.Renew(t.Context()), "stale Renew", session)
	if !bytes.Equal(extract(t, next, session), prev) {
		t.Fatal("a refused Save changed the archive")
	}
	newer := pattern(3, 7000)
	if err := b.Save(t.Context(), bytes.NewReader(newer)); err != nil {
		t.Fatal(err)
	}
	checkLost(t, a.Save(t.Context(), bytes.NewReader(pattern(4, 100))), "stale Save after the new holder saved", session)
	checkLost(t, a.Delete(t.Context()), "stale Delete", session)
	if !bytes.Equal(extract(t, next, session), newer) {
		t.Fatal("a stale writer changed the newer archive")
	}

	// An archive stamped with a newer token than the lease's (written by a holder whose lease
	// record was then deleted by hand and granted again from 1) is never replaced.
	other := "RemoteAuth-stamped"
	stamped := pattern(5, 3000)
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(old.Key(other)), Body: bytes.NewReader(stamped), Metadata: map[string]string{s3store.MetadataLease: "99"}}); err != nil {
		t.Fatal(err)
	}
	low := leasetest.Acquire(t, old, other, "low", time.Hour)
	checkLost(t, low.Save(t.Context(), bytes.NewReader(pattern(6, 100))), "Save under token 1 over an archive of token 99", other)
	if !bytes.Equal(extract(t, old, other), stamped) {
		t.Fatal("the archive stamped with token 99 was replaced")
	}
}

// TestLeaseConnectionCut cuts the connection of a lease holder in the middle of a multipart
// Save and keeps it away while its lease expires and another process takes the session over
// and saves: the cut Save fails with the network error, leaving the previous archive and no
// open upload, and once the connection is back, the old holder's Save, Delete and Renew are
// refused with ErrLeaseLost and the newer archive stays.
func TestLeaseConnectionCut(t *testing.T) {
	s := s3Server(t)
	via, direct, p := proxied(t, s)
	old, bucket := newStore(t, s, via, nil)
	next, err := s3store.New(t.Context(), direct, bucket, &s3store.Options{Prefix: strings.TrimSuffix(old.Key("x"), "x.zip")})
	if err != nil {
		t.Fatal(err)
	}
	const session = "RemoteAuth-cutlease"
	a := leasetest.Acquire(t, old, session, "cut-off", 200*time.Millisecond)
	prev := pattern(1, 100<<10)
	if err := a.Save(t.Context(), bytes.NewReader(prev)); err != nil {
		t.Fatal(err)
	}
	var b remoteauth.Lease
	newer := pattern(3, 6<<20+3)
	r := &hookReader{r: bytes.NewReader(pattern(2, 20<<20)), at: 7 << 20, hook: func() {
		p.Refuse(true)
		p.Cut()
		// Away: the lease expires, another process takes over and saves.
		b = leasetest.TakeOver(t, next, session, "successor", time.Hour)
		if err := b.Save(t.Context(), bytes.NewReader(newer)); err != nil {
			t.Errorf("Save of the successor: %v", err)
		}
		p.Refuse(false)
	}}
	// The Save fails at the cut (a part was in flight) or, if no part was, at its commit, when
	// the fence finds the newer lease: either way with a clear error, and not current.
	err = a.Save(t.Context(), r)
	if err == nil || !isNetworkError(err) && !errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Fatalf("Save cut off mid-way, whose lease was taken over meanwhile: %v, want the network error or ErrLeaseLost", err)
	}
	checkNamed(t, err, session)
	checkLost(t, a.Save(t.Context(), bytes.NewReader(pattern(4, 1000))), "Save after the connection came back", session)
	checkLost(t, a.Delete(t.Context()), "Delete after the connection came back", session)
	checkLost(t, a.Renew(t.Context()), "Renew after the connection came back", session)
	if got := extract(t, next, session); !bytes.Equal(got, newer) {
		t.Fatalf("archive of %d bytes, want the successor's (%d)", len(got), len(newer))
	}
	if open := openUploads(t, direct, bucket, ""); len(open) > 0 {
		t.Errorf("multipart uploads left open: %q", open)
	}
}
