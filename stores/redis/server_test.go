package redisstore_test

// Real Redis servers for the tests: the one that internal/testservers shares among the tests of
// the binary (WWEBSTORE_REDIS_URL's, or a container), with a key prefix of each test's own; and,
// for the tests that need servers on fixed loopback ports (the cluster, Sentinel, a server
// restart), host-network containers from the same image, or redis-server processes when no
// container engine answers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/wwebstore/wwebstore/internal/testenv"
	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
	redisstore "github.com/wwebstore/wwebstore/stores/redis"
)

func TestMain(m *testing.M) { testservers.Main(m) }

// serverOptions returns the go-redis options of the Redis server that the tests share
// (testservers.RedisURL).
func serverOptions(t testing.TB) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(testservers.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// newClient returns a client of o that the test's cleanup closes.
func newClient(t testing.TB, o *redis.Options) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// testPrefix returns a key prefix that no other test uses, for a store on a shared server.
func testPrefix(t testing.TB) string {
	name := strings.NewReplacer("/", ".", " ", "_", "{", "(", "}", ")", "*", "_", "?", "_", "[", "(", "]", ")").Replace(t.Name())
	return fmt.Sprintf("wwebstore-test:%s:%d:", name, time.Now().UnixNano())
}

// newStore returns a store with a prefix of its own on rdb's server. When the test ends, it
// checks that the prefix holds nothing but archives (see checkOnlyArchives), and deletes its keys.
func newStore(t testing.TB, rdb redis.UniversalClient, opts *redisstore.Options) (*redisstore.Store, string) {
	t.Helper()
	o := redisstore.Options{}
	if opts != nil {
		o = *opts
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = testPrefix(t)
	}
	st, err := redisstore.New(t.Context(), rdb, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if !t.Failed() {
			checkOnlyArchives(t, rdb, o.KeyPrefix)
		}
		for _, k := range scanKeys(t, ctx, rdb, o.KeyPrefix+"*") {
			rdb.Del(ctx, k)
		}
	})
	return st, o.KeyPrefix
}

// scanKeys returns the keys that match pattern, on every primary of a cluster.
func scanKeys(t testing.TB, ctx context.Context, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		t.Fatalf("scanKeys: %T", rdb)
	}
	if err != nil {
		t.Fatalf("SCAN %s: %v", pattern, err)
	}
	slices.Sort(keys)
	return keys
}

// checkOnlyArchives checks that the keys under prefix are the meta keys of sessions, the
// chunks of their current generations, their history lists and the chunks of the archives
// these keep, and the lease hashes of leased sessions (which are never deleted, so that tokens
// never go back), and nothing else: no chunk of a failed, superseded or
// retired generation, no bookkeeping key left by a Save or an Extract that has returned.
func checkOnlyArchives(t testing.TB, rdb redis.UniversalClient, prefix string) {
	t.Helper()
	if stray := strayKeys(t, rdb, prefix); len(stray) > 0 {
		t.Errorf("%d keys under %q are not part of an archive, first ones: %q", len(stray), prefix, stray[:min(len(stray), 5)])
	}
}

// strayKeys returns the keys under prefix that checkOnlyArchives refuses.
func strayKeys(t testing.TB, rdb redis.UniversalClient, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	keys := scanKeys(t, ctx, rdb, prefix+"*")
	want := map[string]bool{}
	for _, k := range keys {
		if strings.HasSuffix(k, "}:lease") {
			want[k] = true
		}
		if !strings.HasSuffix(k, ":meta") {
			continue
		}
		m, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		want[k] = true
		tag := strings.TrimSuffix(k, "meta")
		n, _ := strconv.Atoi(m["chunks"])
		for i := range n {
			want[tag+"chunk:"+m["gen"]+":"+strconv.Itoa(i)] = true
		}
		// The archives kept before the current one: the history list's entries,
		// "<gen>:<chunks>:<size>:<chunk_size>:<saved_ms>".
		kept, err := rdb.LRange(ctx, tag+"history", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) > 0 {
			want[tag+"history"] = true
		}
		for _, e := range kept {
			f := strings.Split(e, ":")
			n, _ := strconv.Atoi(f[1])
			for i := range n {
				want[tag+"chunk:"+f[0]+":"+strconv.Itoa(i)] = true
			}
		}
	}
	var stray []string
	for _, k := range keys {
		if !want[k] {
			stray = append(stray, k)
		}
	}
	return stray
}

// sessionKeys returns the keys of session under prefix (SCAN on its hash tag).
func sessionKeys(t testing.TB, rdb redis.UniversalClient, prefix, session string) []string {
	t.Helper()
	return scanKeys(t, context.Background(), rdb, prefix+"{"+session+"}:*")
}

// A node is a redis-server listening on a fixed loopback port, which a test can stop and
// start again: a container with host networking, or a process.
type node struct {
	port     int
	ctr      testcontainers.Container // or
	args     []string                 // the process's, to start it again
	dir      string
	cmd      *exec.Cmd
	cmdDone  chan struct{}
	logFile  string
	nodeKind string
}

func (n *node) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// startNode starts a redis-server on a free loopback port with the given extra arguments: in a
// container with host networking when a container engine answers, else as a process of the
// host's redis-server, else the test is Unavailable.
func startNode(t testing.TB, port int, extra ...string) *node {
	t.Helper()
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", ""}, extra...)
	if testservers.ContainerEngine() == nil {
		return startNodeContainer(t, port, args, "Ready to accept connections")
	}
	if _, err := exec.LookPath("redis-server"); err == nil {
		return startNodeProcess(t, port, args)
	}
	testenv.Unavailable(t, "no container engine answers (%v) and no redis-server is on PATH: %s, or install redis-server",
		testservers.ContainerEngine(), "run scripts/test stores/redis")
	return nil
}

// startNodeContainer starts redis-server with args in a host-network container, and waits for
// readyLog in its log, then for PING. More customizers (files) may follow.
func startNodeContainer(t testing.TB, port int, args []string, readyLog string, more ...testcontainers.ContainerCustomizer) *node {
	t.Helper()
	ctx := context.Background()
	img := testservers.Image("redis")
	ctr, err := testcontainers.Run(ctx, img, append([]testcontainers.ContainerCustomizer{
		testcontainers.WithCmd(append([]string{"redis-server"}, args...)...),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" }),
		testcontainers.WithWaitStrategy(wait.ForLog(readyLog).WithStartupTimeout(30 * time.Second)),
	}, more...)...)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("starting a host-network Redis container from %s on port %d: %v", img, port, err)
	}
	n := &node{port: port, ctr: ctr, nodeKind: "container " + img}
	n.waitReady(t)
	return n
}

func startNodeProcess(t testing.TB, port int, args []string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{port: port, dir: dir, args: append(args, "--dir", dir), logFile: filepath.Join(dir, "redis.log"), nodeKind: "process redis-server"}
	n.startProcess(t)
	t.Cleanup(func() { n.stopProcess() })
	return n
}

func (n *node) startProcess(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(n.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	n.cmd = exec.Command("redis-server", n.args...)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	n.cmdDone = make(chan struct{})
	go func() {
		n.cmd.Wait()
		close(n.cmdDone)
	}()
	n.waitReady(t)
}

func (n *node) stopProcess() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(os.Interrupt) // a clean shutdown, which writes the AOF
	select {
	case <-n.cmdDone:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.cmdDone
	}
	n.cmd = nil
}

// stop stops the server cleanly (SIGTERM/SIGINT), and start starts it again on the same port.
func (n *node) stop(t testing.TB) {
	t.Helper()
	if n.ctr != nil {
		timeout := 10 * time.Second
		if err := n.ctr.Stop(context.Background(), &timeout); err != nil {
			t.Fatalf("stopping the Redis container: %v", err)
		}
		return
	}
	n.stopProcess()
}

func (n *node) start(t testing.TB) {
	t.Helper()
	if n.ctr != nil {
		if err := n.ctr.Start(context.Background()); err != nil {
			t.Fatalf("starting the Redis container again: %v", err)
		}
		n.waitReady(t)
		return
	}
	n.startProcess(t)
}

// waitReady waits until the node answers PING (a restarted one may first answer LOADING).
func (n *node) waitReady(t testing.TB) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis (%s) on %s is not ready after 30 s: %v", n.nodeKind, n.addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCluster starts a Redis Cluster of three primaries, each with all of a third of the
// slots, and returns their addresses once every node sees the cluster as ok.
func startCluster(t testing.TB) []string {
	t.Helper()
	ctx := context.Background()
	ports := freePorts(t, 6) // three client ports and three cluster bus ports
	var nodes []*node
	for i := range 3 {
		port, bus := ports[i], ports[3+i]
		nodes = append(nodes, startNode(t, port,
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port),
			"--cluster-node-timeout", "5000",
			"--appendonly", "no",
		))
	}
	var addrs []string
	clients := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		addrs = append(addrs, n.addr())
		clients[i] = redis.NewClient(&redis.Options{Addr: n.addr()})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, c := range clients {
		first, last := i*slots/3, (i+1)*slots/3-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", addrs[i], err)
		}
		if err := c.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			t.Fatalf("CLUSTER SET-CONFIG-EPOCH on %s: %v", addrs[i], err)
		}
	}
	for i := 1; i < len(nodes); i++ {
		// The bus ports are not port+10000 (which may exceed 65535), so MEET names them.
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", nodes[i].port, ports[3+i]).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", addrs[i], err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range clients {
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") &&
				strings.Contains(info, "cluster_size:3") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cluster is not ok on %s after 60 s: %v\n%s\n%s", addrs[i], err, info, c.ClusterNodes(ctx).Val())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("Redis Cluster of 3 primaries (%s) on %s", nodes[0].nodeKind, strings.Join(addrs, ", "))
	return addrs
}

// sentinelMaster is the name under which the Sentinel of startSentinel monitors its primary.
const sentinelMaster = "mymaster"

// startSentinel starts a Redis primary and a Sentinel that monitors it under the name
// sentinelMaster with a quorum of 1, on free loopback ports (host-network containers, or
// redis-server processes when no engine answers), and returns the Sentinel's address and the
// primary's once the Sentinel reports the primary (SENTINEL GET-MASTER-ADDR-BY-NAME) and sees it
// up. A Sentinel rewrites its config file, so the file is written into a directory that
// redis-server may write: /data in the container, a temporary directory for a process.
func startSentinel(t testing.TB) (sentinelAddr, masterAddr string) {
	t.Helper()
	ports := freePorts(t, 2)
	master := startNode(t, ports[0], "--appendonly", "no")
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 5000\n",
		ports[1], sentinelMaster, ports[0], sentinelMaster)
	var s *node
	if testservers.ContainerEngine() == nil {
		const path = "/data/sentinel.conf"
		s = startNodeContainer(t, ports[1], []string{path, "--sentinel"}, "+monitor master",
			testcontainers.WithFiles(testcontainers.ContainerFile{
				Reader: strings.NewReader(conf), ContainerFilePath: path, FileMode: 0o666,
			}))
	} else {
		path := filepath.Join(t.TempDir(), "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s = startNodeProcess(t, ports[1], []string{path, "--sentinel"})
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
	defer sc.Close()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
		var m map[string]string
		if err == nil {
			m, err = sc.Master(ctx, sentinelMaster).Result()
		}
		if err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == master.addr() && m["flags"] == "master" &&
			m["role-reported"] == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Sentinel on %s does not report the primary %s after 30 s: %v, %q, %v", s.addr(), master.addr(), err, addr, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("Redis primary on %s, monitored as %q by a Sentinel on %s (%s)", master.addr(), sentinelMaster, s.addr(), s.nodeKind)
	return s.addr(), master.addr()
}

// isNetworkError reports whether err is what a client sees when its connection breaks or the
// server cannot be reached.
func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset")
}

// checkNamed checks that err names the store and the session.
func checkNamed(t testing.TB, err error, session string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "redisstore") || !strings.Contains(err.Error(), session) {
		t.Errorf("error %v does not name redisstore and session %q", err, session)
	}
}

var _ remoteauth.Store = (*redisstore.Store)(nil)
