package s3store_test

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wwebstore/wwebstore/remoteauth"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

// versions returns the kept archives of session, newest first, and their IDs, each extracted
// with ExtractVersion.
func versions(t *testing.T, st *s3store.Store, session string) (data [][]byte, ids []string) {
	t.Helper()
	list, err := st.Versions(t.Context(), session)
	if err != nil {
		t.Fatalf("Versions(%q): %v", session, err)
	}
	for _, v := range list {
		var b bytes.Buffer
		if err := st.ExtractVersion(t.Context(), session, v.ID, &b); err != nil {
			t.Fatalf("ExtractVersion(%q, %q): %v", session, v.ID, err)
		}
		if int64(b.Len()) != v.Size {
			t.Errorf("ExtractVersion(%q, %q) wrote %d bytes; Versions says %d", session, v.ID, b.Len(), v.Size)
		}
		data, ids = append(data, b.Bytes()), append(ids, v.ID)
	}
	return data, ids
}

// checkData checks that got holds want, in order, byte for byte.
func checkData(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d archives, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("%s: archive %d (newest first) has %d bytes that differ from the saved %d", what, i, len(got[i]), len(want[i]))
		}
	}
}

// keys returns the keys of the objects under prefix in bucket.
func keys(t *testing.T, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	var list []string
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			list = append(list, aws.ToString(o.Key))
		}
	}
	return list
}

// TestHistoryLayout checks where the kept archives are: the current archive stays at the key of
// wwebjs-aws-s3 with its ID in the metadata, the previous ones are in <key>.history/, named
// <seq>_<saved>_<id>.zip, one fewer than Keep, and List does not report them as sessions.
func TestHistoryLayout(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	st, bucket := newStore(t, s, c, &s3store.Options{Prefix: "sessions", PartSize: s3store.MinPartSize})
	const session = "RemoteAuth-alice"
	key := st.Key(session)
	var saved [][]byte
	for i, size := range []int{3 << 10, 6<<20 + 1, 5 << 10, 4 << 10} { // PutObject and multipart
		data := pattern(uint64(100+i), size)
		save(t, st, session, data)
		saved = append([][]byte{data}, saved...)
	}
	data, ids := versions(t, st, session)
	checkData(t, "Versions", data, saved[:2])

	head, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("HeadObject %s: %v", key, err)
	}
	if got := head.Metadata[s3store.MetadataID]; got != ids[0] {
		t.Errorf("the current object's metadata %s is %q, want the ID that Versions lists first, %q (metadata %v)", s3store.MetadataID, got, ids[0], head.Metadata)
	}
	all := keys(t, c, bucket, strings.TrimSuffix(key, session+".zip"))
	kept := regexp.MustCompile(`^` + regexp.QuoteMeta(key+".history/") + `[0-9]{19}_[0-9]{19}_` + ids[1] + `\.zip$`)
	if len(all) != 2 || all[0] != key || !kept.MatchString(all[1]) {
		t.Errorf("objects %q, want %q and one kept archive matching %s", all, key, kept)
	}
	list, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != session || list[0].Size != int64(len(saved[0])) {
		t.Errorf("List = %+v, want the session %q alone (%d bytes)", list, session, len(saved[0]))
	}
	if _, err := s3store.New(t.Context(), c, bucket, &s3store.Options{Prefix: key + ".history/"}); err == nil || !strings.Contains(err.Error(), "history folder") {
		t.Errorf("New with a prefix that is a history folder: %v, want an error", err)
	}

	if err := st.Delete(t.Context(), session); err != nil {
		t.Fatal(err)
	}
	if left := keys(t, c, bucket, key); len(left) > 0 {
		t.Errorf("objects left after Delete: %q", left)
	}
}

// TestHistoryKeep checks Keep 1 (no history: nothing in the history folder), the default and
// 3: after each of 5 Saves, Versions lists the last Keep archives byte for byte, and the history
// folder holds Keep-1 objects.
func TestHistoryKeep(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	for _, keep := range []int{1, 0, 3} {
		t.Run(fmt.Sprintf("keep=%d", keep), func(t *testing.T) {
			st, bucket := newStore(t, s, c, &s3store.Options{PartSize: s3store.MinPartSize, Keep: keep})
			want := keep
			if keep == 0 {
				want = remoteauth.DefaultKeep
			}
			const session = "RemoteAuth-keep"
			var saved [][]byte
			for i := range 5 {
				data := pattern(uint64(200+i), 1000+i)
				save(t, st, session, data)
				saved = append([][]byte{data}, saved...)
				got, _ := versions(t, st, session)
				checkData(t, fmt.Sprintf("after Save %d", i+1), got, saved[:min(len(saved), want)])
				if n := len(keys(t, c, bucket, st.Key(session)+".history/")); n != min(len(saved), want)-1 {
					t.Errorf("after Save %d: %d objects in the history folder, want %d", i+1, n, min(len(saved), want)-1)
				}
			}
		})
	}
}

// TestHistoryKeepChanged: a session saved with Keep 3 is read with Keep 2, which lists the
// newest 2 and evicts the third at its next Save; and with Keep 1, whose Save removes the
// history folder.
func TestHistoryKeepChanged(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	st3, bucket := newStore(t, s, c, &s3store.Options{Keep: 3})
	prefix := strings.TrimSuffix(st3.Key("x"), "x.zip")
	open := func(keep int) *s3store.Store {
		st, err := s3store.New(t.Context(), c, bucket, &s3store.Options{Prefix: prefix, Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	const session = "RemoteAuth-changed"
	var saved [][]byte
	for i := range 3 {
		data := pattern(uint64(300+i), 2000+i)
		save(t, st3, session, data)
		saved = append([][]byte{data}, saved...)
	}
	st2 := open(2)
	got, _ := versions(t, st2, session)
	checkData(t, "Keep 2 over 3 kept", got, saved[:2])
	next := pattern(310, 3000)
	save(t, st2, session, next)
	saved = append([][]byte{next}, saved...)
	got, _ = versions(t, st3, session)
	checkData(t, "Keep 3 after a Save with Keep 2", got, saved[:2])

	st1 := open(1)
	got, _ = versions(t, st1, session)
	checkData(t, "Keep 1", got, saved[:1])
	save(t, st1, session, next)
	if left := keys(t, c, bucket, st1.Key(session)+".history/"); len(left) > 0 {
		t.Errorf("a Save with Keep 1 left %q in the history folder", left)
	}
}

// TestHistoryExistingArchive: an object written at the session's key without s3store's
// metadata — by wwebjs-aws-s3, or by s3store before it kept history — is listed with an ID that
// stays the same, and is kept by the next Save. A Delete by wwebjs-aws-s3 (the current object
// only) leaves the history folder: it is not listed, and the next Save removes it.
func TestHistoryExistingArchive(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	st, bucket := newStore(t, s, c, nil)
	const session = "RemoteAuth-old"
	key := st.Key(session)
	theirs := pattern(400, 50<<10)
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(theirs)}); err != nil {
		t.Fatal(err)
	}
	got, ids := versions(t, st, session)
	checkData(t, "an object of another program", got, [][]byte{theirs})
	if _, again := versions(t, st, session); !slices.Equal(ids, again) {
		t.Errorf("the ID of an object of another program changed from %q to %q", ids, again)
	}
	ours := pattern(401, 60<<10)
	save(t, st, session, ours)
	got, ids2 := versions(t, st, session)
	checkData(t, "after a Save over it", got, [][]byte{ours, theirs})
	if ids2[1] != ids[0] {
		t.Errorf("the kept object of another program has ID %q, but had %q as the current archive", ids2[1], ids[0])
	}

	// wwebjs-aws-s3's delete: DeleteObject of the key alone.
	if _, err := c.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: &bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	if got, _ := versions(t, st, session); len(got) != 0 {
		t.Errorf("Versions after the current object was deleted lists %d archives, want none", len(got))
	}
	fresh := pattern(402, 1000)
	save(t, st, session, fresh)
	got, _ = versions(t, st, session)
	checkData(t, "a Save after a foreign Delete", got, [][]byte{fresh})
	if left := keys(t, c, bucket, key+".history/"); len(left) > 0 {
		t.Errorf("the history from before the Delete is still there: %q", left)
	}
}

// TestHistorySaveDiedAfterKeeping: a Save that kept the current archive and then failed (or its
// process died) before replacing it leaves a copy of the current archive in the history folder:
// it is not listed twice, the next Save does not copy it again, and Keep still holds.
func TestHistorySaveDiedAfterKeeping(t *testing.T) {
	s := s3Server(t)
	c := s.client(nil)
	st, bucket := newStore(t, s, c, nil)
	const session = "RemoteAuth-died"
	key := st.Key(session)
	older, current := pattern(500, 3000), pattern(501, 4000)
	save(t, st, session, older)
	save(t, st, session, current)
	_, ids := versions(t, st, session)
	// What keepCurrent copies: <seq>_<saved>_<id>.zip, seq after the kept archive's.
	dup := fmt.Sprintf("%s.history/%019d_%019d_%s.zip", key, time.Now().Add(time.Hour).UnixNano(), time.Now().UnixNano(), ids[0])
	src := bucket + "/" + key
	if _, err := c.CopyObject(t.Context(), &s3.CopyObjectInput{Bucket: &bucket, Key: &dup, CopySource: &src}); err != nil {
		t.Fatal(err)
	}
	got, again := versions(t, st, session)
	checkData(t, "with a copy of the current archive kept", got, [][]byte{current, older})
	if !slices.Equal(ids, again) {
		t.Errorf("IDs changed from %q to %q", ids, again)
	}
	next := pattern(502, 5000)
	save(t, st, session, next)
	got, _ = versions(t, st, session)
	checkData(t, "after the next Save", got, [][]byte{next, current})
	if left := keys(t, c, bucket, key+".history/"); len(left) != 1 || left[0] != dup {
		t.Errorf("history folder %q, want the copy %q alone", left, dup)
	}
}

// TestHistorySaveConnectionCut: the connection is cut in the middle of a multipart Save: the
// kept archives are the same, byte for byte, with the same IDs, and no upload is left open; the
// next Save evicts the oldest.
func TestHistorySaveConnectionCut(t *testing.T) {
	s := s3Server(t)
	via, direct, p := proxied(t, s)
	st, bucket := newStore(t, s, via, nil)
	const session = "RemoteAuth-cuthistory"
	older, current := pattern(600, 6<<20+7), pattern(601, 100<<10)
	save(t, st, session, older)
	save(t, st, session, current)
	_, ids := versions(t, st, session)

	var back sync.WaitGroup
	r := &hookReader{r: bytes.NewReader(pattern(602, 20<<20)), at: 12 << 20, hook: func() {
		p.Refuse(true)
		p.Cut()
		back.Go(func() {
			time.Sleep(time.Second)
			p.Refuse(false)
		})
	}}
	err := st.Save(t.Context(), session, r)
	back.Wait()
	if err == nil {
		t.Fatal("Save through a connection cut succeeded")
	}
	checkNamed(t, err, session)
	if open := openUploads(t, direct, bucket, ""); len(open) > 0 {
		t.Errorf("multipart uploads left open after the failed Save: %q", open)
	}
	got, again := versions(t, st, session)
	checkData(t, "after the cut Save", got, [][]byte{current, older})
	if !slices.Equal(ids, again) {
		t.Errorf("the cut Save changed the IDs from %q to %q", ids, again)
	}
	next := pattern(603, 6<<20)
	save(t, st, session, next)
	got, _ = versions(t, st, session)
	checkData(t, "after the next Save", got, [][]byte{next, current})
}

// TestHistoryLargeCopy keeps an archive larger than what one CopyObject copies (5 GiB on S3,
// lowered here to 5 MiB) with UploadPartCopy parts.
func TestHistoryLargeCopy(t *testing.T) {
	defer s3store.SetCopyLimits(s3store.MinPartSize, s3store.MinPartSize)()
	s := s3Server(t)
	c := s.client(nil)
	st, bucket := newStore(t, s, c, nil)
	const session = "RemoteAuth-large"
	large, next := pattern(700, 12<<20+5), pattern(701, 1000) // 3 parts of copy
	save(t, st, session, large)
	save(t, st, session, next)
	got, _ := versions(t, st, session)
	checkData(t, "a kept archive copied in parts", got, [][]byte{next, large})
	if open := openUploads(t, c, bucket, ""); len(open) > 0 {
		t.Errorf("multipart uploads left open: %q", open)
	}
}

// newSession serves the Session round trip of grants_test.go.
func newSession(t *testing.T, st remoteauth.Store, opts *remoteauth.Options) *remoteauth.Session {
	t.Helper()
	o := remoteauth.Options{}
	if opts != nil {
		o = *opts
	}
	o.ClientID, o.DataPath = "test", t.TempDir()
	s, err := remoteauth.NewSession(st, &o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
