package postgresstore_test

// Real servers for the tests: the PostgreSQL that internal/testservers shares among the tests of
// the binary (WWEBSTORE_POSTGRES_URL's, or a container), and a PgBouncer in transaction pooling
// mode in front of it (startPgBouncer).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wwebstore/wwebstore/internal/testenv"
	"github.com/wwebstore/wwebstore/internal/testservers"
	postgresstore "github.com/wwebstore/wwebstore/stores/postgres"
)

// envURL names a server of yours to test against instead of a container (testservers reads it).
// Every test works in tables of its own, with random names, and drops them when it ends.
const envURL = "WWEBSTORE_POSTGRES_URL"

func TestMain(m *testing.M) { testservers.Main(m) }

// serverURL returns the connection URL of the PostgreSQL server that the tests of the binary
// share (testservers.PostgresURL).
func serverURL(t testing.TB) string {
	t.Helper()
	return testservers.PostgresURL(t)
}

// newPool returns a pool for url, closed when t ends.
func newPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return newPoolConfig(t, cfg)
}

func newPoolConfig(t testing.TB, cfg *pgxpool.Config) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// uniqueTable returns a new table name, so that tests sharing a server never meet.
func uniqueTable() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "wwebstore_test_" + hex.EncodeToString(b)
}

// newStore returns a store in tables of its own, through pool, and drops the tables through
// admin when t ends. opts may be nil; its table names, if set, are used as they are.
func newStore(t testing.TB, pool, admin *pgxpool.Pool, opts *postgresstore.Options) *postgresstore.Store {
	t.Helper()
	var o postgresstore.Options
	if opts != nil {
		o = *opts
	}
	if o.Table == "" {
		o.Table = uniqueTable()
	}
	st, err := postgresstore.New(t.Context(), pool, &o)
	if err != nil {
		t.Fatal(err)
	}
	dropTables(t, admin, st)
	return st
}

// dropTables drops st's tables through admin when t ends.
func dropTables(t testing.TB, admin *pgxpool.Pool, st *postgresstore.Store) {
	t.Helper()
	sessions, chunks, versions := st.TableNames()
	leases := st.LeaseTableName()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS "+leases+", "+versions+", "+chunks+", "+sessions); err != nil {
			t.Errorf("dropping the test tables: %v", err)
		}
	})
}

// content is a pseudo-random archive: the same bytes for the same seed, generated while read.
type content struct {
	seed uint64
	size int64
}

func (c content) reader() io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(c.seed >> (8 * i))
	}
	return io.LimitReader(mrand.NewChaCha8(key), c.size)
}

func (c content) String() string { return fmt.Sprintf("%d bytes (seed %d)", c.size, c.seed) }

// bytes returns the whole content, for small ones.
func (c content) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := io.ReadAll(c.reader())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pgbouncerPath returns the pgbouncer binary (Debian installs it in /usr/sbin).
func pgbouncerPath() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", errors.New("pgbouncer is not installed")
}

// startPgBouncer starts a PgBouncer in transaction pooling mode in front of the server that
// serverURL names, with fewer server connections than the test's pools have clients, so that
// transactions of one client land on different server connections, and returns the URL of a
// database through it. PgBouncer stops when t ends.
func startPgBouncer(t testing.TB, serverURL string) string {
	t.Helper()
	bin, err := pgbouncerPath()
	if err != nil {
		testenv.Unavailable(t, "%v (apt-get install pgbouncer; scripts/test installs it)", err)
	}
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pgbouncer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// PgBouncer refuses to run as root: as root, it runs as nobody, which must write here.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	quote := func(s string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
	}
	server := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", quote(cfg.Host), cfg.Port, quote(cfg.Database), quote(cfg.User))
	if cfg.Password != "" {
		server += " password=" + quote(cfg.Password)
	}
	ini := fmt.Sprintf(`[databases]
wwebstore = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 3
max_client_conn = 100
server_tls_sslmode = disable
logfile = %s
ignore_startup_parameters = extra_float_digits
`, server, port, filepath.Join(dir, "pgbouncer.log"))
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(iniPath, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{iniPath}
	if os.Geteuid() == 0 {
		args = []string{"-u", "nobody", iniPath}
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pgbouncer: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	u := fmt.Sprintf("postgres://wwebstore@127.0.0.1:%d/wwebstore?sslmode=disable&connect_timeout=5", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, u)
		if err == nil {
			var mode string
			err = conn.QueryRow(ctx, "SHOW transaction_isolation").Scan(&mode) // a query through to the server
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return u
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Fatalf("pgbouncer exited (%v); its log:\n%s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Fatalf("pgbouncer not ready after 15 s: %v; its log:\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a TCP port on the loopback interface that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tcpAddress returns the host:port of the server that url names, or skips the test for a server
// reached through a Unix socket, which a TCP proxy cannot stand in front of.
func tcpAddress(t testing.TB, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		t.Skipf("%s names a server on a Unix socket (%s); this test needs TCP", envURL, cfg.Host)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// withHostPort returns url with its host and port replaced by addr.
func withHostPort(t testing.TB, rawURL, addr string) *pgxpool.Config {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Fallbacks = host, uint16(p), nil
	return cfg
}

// readLine reads one line from r, for the helper process protocol.
func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}
