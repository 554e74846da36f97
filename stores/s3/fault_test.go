package s3store_test

// Fault tests: the connection to the S3 server is cut, through internal/faultproxy, in the
// middle of a Save and of an Extract.

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wwebstore/wwebstore/internal/faultproxy"
	s3store "github.com/wwebstore/wwebstore/stores/s3"
)

// proxied returns a client that reaches the server through a fault proxy and does not retry
// (so that a cut shows at once, as a long outage would after the SDK's retries), a direct
// client, and the proxy.
func proxied(t *testing.T, s *server) (via, direct *s3.Client, p *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p = faultproxy.Start(t, u.Host)
	via = s.client(func(o *s3.Options) { o.RetryMaxAttempts = 1 }, "http://"+p.Addr())
	return via, s.client(nil), p
}

// hookReader calls hook once when at bytes have been read from it.
type hookReader struct {
	r    io.Reader
	n    int64
	at   int64
	hook func()
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.hook != nil && h.n+int64(len(p)) > h.at {
		p = p[:max(h.at-h.n, 0)]
		if len(p) == 0 {
			h.hook()
			h.hook = nil
			return 0, nil
		}
	}
	n, err := h.r.Read(p)
	h.n += int64(n)
	return n, err
}

// TestSaveConnectionCut cuts every connection to the server while a multipart Save is under
// way (after 12 MiB of a 40 MiB archive, parts of 5 MiB, 3 at once), and refuses new ones for a
// second, as a server that goes away and comes back: Save fails with a clear error, the previous
// archive stays whole, and no multipart upload is left open (the abort is retried until the
// server answers again).
func TestSaveConnectionCut(t *testing.T) {
	s := s3Server(t)
	via, direct, p := proxied(t, s)
	st, bucket := newStore(t, s, via, nil)
	const session = "RemoteAuth-cut"
	prev := pattern(1, 6<<20+7) // itself a multipart upload
	save(t, st, session, prev)

	var back sync.WaitGroup
	r := &hookReader{r: bytes.NewReader(pattern(2, 40<<20)), at: 12 << 20, hook: func() {
		p.Refuse(true)
		p.Cut()
		back.Go(func() {
			time.Sleep(time.Second)
			p.Refuse(false)
		})
	}}
	start := time.Now()
	err := st.Save(t.Context(), session, r)
	back.Wait()
	if err == nil {
		t.Fatal("Save through a connection cut after 12 MiB succeeded")
	}
	checkNamed(t, err, session)
	if !isNetworkError(err) {
		t.Errorf("Save through a cut connection: %v, want the network error", err)
	}
	t.Logf("Save failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if open := openUploads(t, direct, bucket, ""); len(open) > 0 {
		t.Errorf("multipart uploads left open after the failed Save: %q", open)
	}
	if got := extract(t, st, session); !bytes.Equal(got, prev) {
		t.Fatalf("after the failed Save, Extract wrote %d bytes, not the previous archive (%d)", len(got), len(prev))
	}
	next := pattern(3, 11<<20)
	save(t, st, session, next)
	if !bytes.Equal(extract(t, st, session), next) {
		t.Error("Extract after the next Save differs from it")
	}
}

// TestSaveServerAway: the server stays away: Save fails, and its error says that the upload
// could not be aborted (a lifecycle rule must remove its parts); the previous archive is whole.
func TestSaveServerAway(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 30 s for the abort to give up")
	}
	s := s3Server(t)
	via, direct, p := proxied(t, s)
	st, bucket := newStore(t, s, via, nil)
	const session = "RemoteAuth-away"
	prev := pattern(1, 100<<10)
	save(t, st, session, prev)
	r := &hookReader{r: bytes.NewReader(pattern(2, 20<<20)), at: 7 << 20, hook: func() {
		p.Refuse(true)
		p.Cut()
	}}
	err := st.Save(t.Context(), session, r)
	if err == nil {
		t.Fatal("Save while the server is away succeeded")
	}
	checkNamed(t, err, session)
	t.Logf("the error: %v", err)
	p.Refuse(false)
	if !bytes.Contains([]byte(err.Error()), []byte("AbortMultipartUpload")) {
		t.Errorf("the error %q does not say that the upload could not be aborted", err)
	}
	if !bytes.Equal(extract(t, st, session), prev) {
		t.Error("the previous archive changed")
	}
	abortUploads(t, direct, bucket) // the upload the store could not abort
}

// TestExtractConnectionCut: connections are cut and refused in the middle of an Extract: it
// fails with the network error, naming the session; once the server is back, the archive is
// whole.
func TestExtractConnectionCut(t *testing.T) {
	s := s3Server(t)
	via, _, p := proxied(t, s)
	st, _ := newStore(t, s, via, nil)
	const session = "RemoteAuth-cutread"
	data := pattern(1, 12<<20+3)
	save(t, st, session, data)
	var partial bytes.Buffer
	err := st.Extract(t.Context(), session, faultproxy.TripWriter(&partial, 1<<20, func() {
		p.Refuse(true)
		p.Cut()
	}))
	if err == nil {
		t.Fatal("Extract through a connection cut after 1 MiB succeeded")
	}
	checkNamed(t, err, session)
	if !isNetworkError(err) {
		t.Errorf("Extract through a cut connection: %v, want the network error", err)
	}
	t.Logf("the error, after %d bytes: %v", partial.Len(), err)
	p.Refuse(false)
	if !bytes.Equal(extract(t, st, session), data) {
		t.Fatal("Extract after the cut differs from the archive")
	}
}

// TestExtractResumes: the connection is cut once in the middle of an Extract and the server
// stays reachable: Extract resumes with a ranged GET of the same ETag and writes the archive
// whole.
func TestExtractResumes(t *testing.T) {
	s := s3Server(t)
	via, _, p := proxied(t, s)
	st, _ := newStore(t, s, via, nil)
	const session = "RemoteAuth-resume"
	data := pattern(1, 12<<20+3)
	save(t, st, session, data)
	var got bytes.Buffer
	if err := st.Extract(t.Context(), session, faultproxy.TripWriter(&got, 3<<20, p.Cut)); err != nil {
		t.Fatalf("Extract with one cut: %v", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("Extract with one cut wrote %d bytes that differ from the archive (%d)", got.Len(), len(data))
	}
}

// TestExtractChanged: the archive is replaced while an Extract is cut: resuming would mix two
// archives, so Extract fails with ErrChanged.
func TestExtractChanged(t *testing.T) {
	s := s3Server(t)
	via, direct, p := proxied(t, s)
	st, bucket := newStore(t, s, via, nil)
	const session = "RemoteAuth-changed"
	save(t, st, session, pattern(1, 12<<20+3))
	other, err := s3store.New(t.Context(), direct, bucket, &s3store.Options{Prefix: st.Key("x")[:len(st.Key("x"))-len("x.zip")]})
	if err != nil {
		t.Fatal(err)
	}
	next := pattern(2, 12<<20+3)
	err = st.Extract(t.Context(), session, faultproxy.TripWriter(io.Discard, 3<<20, func() {
		// Cut first: while the Save runs (it keeps the previous archive, which takes a few
		// requests), the proxy would otherwise deliver the rest of the download.
		p.Cut()
		save(t, other, session, next)
	}))
	if !errors.Is(err, s3store.ErrChanged) {
		t.Fatalf("Extract across a replacement: %v, want ErrChanged", err)
	}
	checkNamed(t, err, session)
	t.Logf("the error: %v", err)
	if !bytes.Equal(extract(t, st, session), next) {
		t.Error("Extract after the replacement differs from the new archive")
	}
}
