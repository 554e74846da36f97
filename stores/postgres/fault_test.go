package postgresstore_test

// Fault tests: the connection to the server is cut, or the saving process killed, in the middle
// of a Save or an Extract. The previous archive must stay whole and readable, the error must say
// what happened, and nothing of the failed Save may remain.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/internal/faultproxy"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
)

// faultApp is the application_name of the connections that the fault tests cut, so that the
// tests can watch the server notice.
const faultApp = "wwebstore-fault"

// proxiedStore returns a store whose connections go through a fault proxy, a store on the same
// tables with direct connections, the direct pool and the proxy.
func proxiedStore(t *testing.T, opts *postgresstore.Options) (cut, direct *postgresstore.Store, admin *pgxpool.Pool, proxy *faultproxy.Proxy) {
	t.Helper()
	server := serverURL(t)
	proxy = faultproxy.Start(t, tcpAddress(t, server))
	cfg := withHostPort(t, server, proxy.Addr())
	cfg.ConnConfig.RuntimeParams["application_name"] = faultApp
	proxied := newPoolConfig(t, cfg)
	admin = newPool(t, server)
	direct = newStore(t, admin, admin, opts)
	o := postgresstore.Options{SkipCreateTables: true}
	if opts != nil {
		o = *opts
		o.SkipCreateTables = true
	}
	o.Table, o.ChunkTable = tableNames(direct)
	cut, err := postgresstore.New(t.Context(), proxied, &o)
	if err != nil {
		t.Fatal(err)
	}
	return cut, direct, admin, proxy
}

// tableNames returns st's table names unquoted (they are plain lower-case names in these tests).
func tableNames(st *postgresstore.Store) (sessions, chunks string) {
	s, c, _ := st.TableNames()
	return strings.Trim(s, `"`), strings.Trim(c, `"`)
}

// isNetworkError reports whether err says that the connection failed.
func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// waitGone waits until the server has no more connections named faultApp: it has noticed the
// cut and rolled back what they were doing.
func waitGone(t *testing.T, admin *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", faultApp).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still has %d connections of the cut client after 30 s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRows checks that the committed rows of session's current archive are exactly those of an
// archive of size bytes, and that every chunk row of session belongs to an archive that the
// store keeps: no chunk of a failed Save is left behind.
func checkRows(t *testing.T, admin *pgxpool.Pool, st *postgresstore.Store, session string, size int64) {
	t.Helper()
	sessions, chunks, versions := st.TableNames()
	var recorded, rows, total, stray int64
	err := admin.QueryRow(t.Context(), `SELECT s.size,
		(SELECT count(*) FROM `+chunks+` WHERE session = $1 AND gen = s.gen),
		(SELECT coalesce(sum(octet_length(data)), 0) FROM `+chunks+` WHERE session = $1 AND gen = s.gen),
		(SELECT count(*) FROM `+chunks+` c WHERE session = $1 AND gen <> s.gen
			AND NOT EXISTS (SELECT 1 FROM `+versions+` v WHERE v.session = $1 AND v.gen = c.gen))
		FROM `+sessions+` s WHERE s.session = $1`, session).Scan(&recorded, &rows, &total, &stray)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := (size + postgresstore.DefaultChunkSize - 1) / postgresstore.DefaultChunkSize
	if recorded != size || total != size || rows != wantRows {
		t.Errorf("rows of %q: session row says %d bytes, %d chunk rows hold %d bytes; want %d bytes in %d rows", session, recorded, rows, total, size, wantRows)
	}
	if stray != 0 {
		t.Errorf("rows of %q: %d chunk rows belong to no kept archive", session, stray)
	}
}

func TestFaultSaveConnectionCut(t *testing.T) {
	ctx := t.Context()
	cut, direct, admin, proxy := proxiedStore(t, nil)
	const session = "RemoteAuth-cut"
	prev := content{seed: 1, size: 3<<20 + 5}
	if err := cut.Save(ctx, session, prev.reader()); err != nil {
		t.Fatal(err)
	}

	// The connection goes away 5 MiB into the COPY of a 16 MiB archive.
	proxy.CutAfter(5 << 20)
	err := cut.Save(ctx, session, content{seed: 2, size: 16 << 20}.reader())
	proxy.Refuse(false)
	if err == nil {
		t.Fatal("Save through a connection cut half-way succeeded")
	}
	t.Logf("Save through a cut connection: %v", err)
	if !isNetworkError(err) || !strings.Contains(err.Error(), "connection to the server lost") {
		t.Errorf("Save through a cut connection: %v; want an error wrapping the network error, saying so", err)
	}
	if !strings.HasPrefix(err.Error(), `postgresstore: save session "`+session+`": `) {
		t.Errorf("Save through a cut connection: %q does not name the store and the session", err)
	}

	waitGone(t, admin)
	checkRows(t, admin, direct, session, prev.size)
	for name, st := range map[string]*postgresstore.Store{"direct": direct, "through the proxy again": cut} {
		var buf bytes.Buffer
		if err := st.Extract(ctx, session, &buf); err != nil || !bytes.Equal(buf.Bytes(), prev.bytes(t)) {
			t.Errorf("Extract %s after the failed Save: %d bytes, %v; want the previous archive, whole", name, buf.Len(), err)
		}
	}
	// The session is not left locked: a new Save goes through.
	next := content{seed: 3, size: 2<<20 + 1}
	if err := cut.Save(ctx, session, next.reader()); err != nil {
		t.Fatalf("Save after the cut: %v", err)
	}
	checkRows(t, admin, direct, session, next.size)
}

// TestFaultSaveNewSessionCut cuts the first Save of a session: nothing becomes visible.
func TestFaultSaveNewSessionCut(t *testing.T) {
	ctx := t.Context()
	cut, direct, admin, proxy := proxiedStore(t, nil)
	const session = "RemoteAuth-new"
	if ok, err := cut.SessionExists(ctx, session); ok || err != nil { // opens a connection first
		t.Fatalf("SessionExists = %v, %v", ok, err)
	}
	proxy.CutAfter(3 << 20)
	err := cut.Save(ctx, session, content{seed: 4, size: 8 << 20}.reader())
	proxy.Refuse(false)
	if err == nil || !isNetworkError(err) {
		t.Fatalf("Save through a cut connection: %v; want a network error", err)
	}
	waitGone(t, admin)
	if ok, err := direct.SessionExists(ctx, session); ok || err != nil {
		t.Errorf("SessionExists after a cut first Save = %v, %v; want false, nil", ok, err)
	}
	_, chunks, _ := direct.TableNames()
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+chunks).Scan(&n); err != nil || n != 0 {
		t.Errorf("chunk rows after a cut first Save: %d, %v; want 0", n, err)
	}
}

func TestFaultExtractConnectionCut(t *testing.T) {
	ctx := t.Context()
	cut, _, _, proxy := proxiedStore(t, nil)
	const session = "RemoteAuth-cut"
	c := content{seed: 5, size: 24<<20 + 3}
	if err := cut.Save(ctx, session, c.reader()); err != nil {
		t.Fatal(err)
	}
	// The connection goes away once 4 MiB have been written.
	w := &hookWriter{after: 4 << 20, hook: proxy.Cut}
	err := cut.Extract(ctx, session, w)
	if err == nil {
		t.Fatal("Extract through a connection cut half-way succeeded")
	}
	t.Logf("Extract through a cut connection: %v", err)
	if !isNetworkError(err) || !strings.HasPrefix(err.Error(), `postgresstore: extract session "`+session+`": `) {
		t.Errorf("Extract through a cut connection: %v; want a postgresstore error naming the session and wrapping the network error", err)
	}
	// A retry returns the archive whole.
	var buf bytes.Buffer
	if err := cut.Extract(ctx, session, &buf); err != nil || !bytes.Equal(buf.Bytes(), c.bytes(t)) {
		t.Errorf("Extract after the cut: %d bytes, %v; want the archive whole", buf.Len(), err)
	}
}

// TestFaultServerDown checks the errors while the server cannot be reached at all: failures,
// never a missing session.
func TestFaultServerDown(t *testing.T) {
	ctx := t.Context()
	cut, _, _, proxy := proxiedStore(t, nil)
	const session = "RemoteAuth-down"
	c := content{seed: 6, size: 1<<20 + 1}
	if err := cut.Save(ctx, session, c.reader()); err != nil {
		t.Fatal(err)
	}
	proxy.Refuse(true)
	proxy.Cut()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if ok, err := cut.SessionExists(tctx, session); err == nil {
		t.Errorf("SessionExists with the server down = %v, nil; want an error", ok)
	}
	var buf bytes.Buffer
	if err := cut.Extract(tctx, session, &buf); err == nil || buf.Len() != 0 {
		t.Errorf("Extract with the server down: %v, %d bytes; want an error and nothing written", err, buf.Len())
	}
	if err := cut.Save(tctx, session, content{seed: 7, size: 10}.reader()); err == nil {
		t.Error("Save with the server down succeeded")
	}
	if err := cut.Delete(tctx, session); err == nil {
		t.Error("Delete with the server down succeeded")
	}
	proxy.Refuse(false)
	buf.Reset()
	if err := cut.Extract(ctx, session, &buf); err != nil || !bytes.Equal(buf.Bytes(), c.bytes(t)) {
		t.Errorf("Extract once the server is back: %d bytes, %v", buf.Len(), err)
	}
}

// envHelper makes the test binary a helper process that saves an endless archive and waits to be
// killed: URL, table and session, one per line.
const envHelper = "WWEBSTORE_POSTGRES_TEST_HELPER"

// TestFaultSaveProcessKilled kills (SIGKILL) a process in the middle of its Save: the server
// rolls the Save back, and the previous archive stays whole.
func TestFaultSaveProcessKilled(t *testing.T) {
	if os.Getenv(envHelper) != "" {
		t.Skip("in the helper process")
	}
	ctx := t.Context()
	server := serverURL(t)
	admin := newPool(t, server)
	st := newStore(t, admin, admin, nil)
	table, _ := tableNames(st)
	const session = "RemoteAuth-killed"
	prev := content{seed: 8, size: 2<<20 + 9}
	if err := st.Save(ctx, session, prev.reader()); err != nil {
		t.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperProcessSave$", "-test.v")
	cmd.Env = append(os.Environ(), envHelper+"="+strings.Join([]string{server, table, session}, "\n"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := bufio.NewReader(out)
	for {
		line, err := readLine(lines)
		if err != nil {
			t.Fatalf("the helper process ended before saving 8 MiB: %v", err)
		}
		if line == "saving" {
			break
		}
	}
	// The helper has sent at least 8 MiB of an endless archive, within its transaction.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	cmd.Wait()

	// The server sees the connection go, rolls back, and releases the session's lock: a Save
	// from here goes through (it would wait for the lock otherwise).
	checkRows(t, admin, st, session, prev.size)
	var buf bytes.Buffer
	if err := st.Extract(ctx, session, &buf); err != nil || !bytes.Equal(buf.Bytes(), prev.bytes(t)) {
		t.Errorf("Extract after the saving process was killed: %d bytes, %v; want the previous archive", buf.Len(), err)
	}
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	next := content{seed: 9, size: 1 << 20}
	if err := st.Save(tctx, session, next.reader()); err != nil {
		t.Fatalf("Save after the saving process was killed: %v", err)
	}
	checkRows(t, admin, st, session, next.size)
}

// TestHelperProcessSave is the process that TestFaultSaveProcessKilled kills.
func TestHelperProcessSave(t *testing.T) {
	args := strings.Split(os.Getenv(envHelper), "\n")
	if len(args) != 3 {
		t.Skip("only run by TestFaultSaveProcessKilled")
	}
	pool := newPool(t, args[0])
	st, err := postgresstore.New(t.Context(), pool, &postgresstore.Options{Table: args[1], SkipCreateTables: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &signalReader{r: content{seed: 10, size: 1 << 40}.reader(), after: 8 << 20, signal: func() {
		fmt.Println("saving")
	}}
	err = st.Save(t.Context(), args[2], r)
	t.Fatalf("Save of an endless archive returned: %v", err)
}

// signalReader calls signal once after after bytes have been read, then goes on slowly.
type signalReader struct {
	r        io.Reader
	after, n int64
	signal   func()
}

func (s *signalReader) Read(p []byte) (int, error) {
	if s.n >= s.after {
		if s.signal != nil {
			s.signal()
			s.signal = nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	return n, err
}
