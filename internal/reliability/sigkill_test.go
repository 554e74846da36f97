package reliability

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/internal/testservers"
	"github.com/wwebstore/wwebstore/remoteauth"
)

// The helper process: TestMain runs helperMain instead of the tests when helperEnv is set. The
// other variables tell it what to do; it reports on its standard output, one line per event:
//
//	restored <found> <digest>     after its Restore: whether it found an archive, and the
//	                              restored profile's tree.digest() ("-" if not found)
//	start <k>                     before it backs up state k
//	saved <k> <nanoseconds>       after the backup of state k succeeded
//	failed <k> <error>            after it failed (the helper then exits with status 1)
const (
	helperEnv      = "WWEBSTORE_RELIABILITY_HELPER" // "backup": restore, then back up states
	helperURL      = "WWEBSTORE_RELIABILITY_URL"    // the store
	helperData     = "WWEBSTORE_RELIABILITY_DATA"   // Options.DataPath, a new directory
	helperFirst    = "WWEBSTORE_RELIABILITY_FIRST"  // the first state to back up
	helperCount    = "WWEBSTORE_RELIABILITY_COUNT"  // how many states to back up, one after the other
	helperSize     = "WWEBSTORE_RELIABILITY_SIZE"   // profilegen's Size
	sigkillClient  = "sigkill"                      // the ClientID of the SIGKILL test's sessions
	helperLeaseTTL = remoteauth.MinLeaseTTL
	// helperLeaseWait bounds a helper's wait for the lease of the helper killed before it, which
	// expires helperLeaseTTL after its last renewal.
	helperLeaseWait = 30 * time.Second
)

// helperMain is the helper process: it restores the session from the store into a new
// DataPath, as a restarted process does, then backs up states first, first+1, … count times,
// replacing the profile with each state before its backup. It returns the exit status.
func helperMain() int {
	first, err1 := strconv.ParseInt(os.Getenv(helperFirst), 10, 64)
	count, err2 := strconv.Atoi(os.Getenv(helperCount))
	size, err3 := strconv.ParseInt(os.Getenv(helperSize), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || os.Getenv(helperEnv) != "backup" {
		fmt.Fprintf(os.Stderr, "reliability helper: bad environment (%s=%q): %v\n", helperEnv, os.Getenv(helperEnv), err)
		return 2
	}
	ctx := context.Background()
	fail := func(k int64, err error) int {
		fmt.Printf("failed %d %v\n", k, err)
		return 1
	}
	st, err := remoteauth.OpenStore(ctx, os.Getenv(helperURL))
	if err != nil {
		return fail(0, err)
	}
	data := os.Getenv(helperData)
	s, err := remoteauth.NewSession(st, &remoteauth.Options{
		ClientID: sigkillClient,
		DataPath: data,
		// The helper before this one was killed holding the lease of the session (with a store
		// that leases): with the shortest TTL, this one waits at most that long for it.
		Lease: remoteauth.LeaseOptions{TTL: helperLeaseTTL, Wait: helperLeaseWait},
	})
	if err != nil {
		return fail(0, err)
	}
	res, err := s.Restore(ctx)
	if err != nil {
		return fail(0, err)
	}
	digest := "-"
	if res.Found {
		tr, err := hashTree(s.ProfileDir())
		if err != nil {
			return fail(0, err)
		}
		digest = tr.digest()
	}
	fmt.Printf("restored %t %s\n", res.Found, digest)
	states := &states{size: size}
	for k := first; k < first+int64(count); k++ {
		gen := filepath.Join(data, fmt.Sprintf("gen-%d", k))
		if err := states.generate(ctx, gen, k); err != nil {
			return fail(k, err)
		}
		if err := os.RemoveAll(s.ProfileDir()); err != nil {
			return fail(k, err)
		}
		if err := os.Rename(gen, s.ProfileDir()); err != nil {
			return fail(k, err)
		}
		fmt.Printf("start %d\n", k)
		res, err := s.Backup(ctx)
		if err != nil {
			return fail(k, err)
		}
		fmt.Printf("saved %d %d\n", k, res.Duration.Nanoseconds())
	}
	if err := s.Close(ctx); err != nil {
		return fail(first+int64(count)-1, err)
	}
	return 0
}

// helper is a running helper process and the lines it printed so far.
type helper struct {
	cmd    *exec.Cmd
	lines  chan string // closed at the end of its output
	stderr bytes.Buffer
}

// startHelper starts a helper process that restores srv's session into a new DataPath and backs
// up count states from first.
func startHelper(t *testing.T, srv testservers.Server, size, first int64, count int) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		helperEnv+"=backup",
		helperURL+"="+srv.URL,
		helperData+"="+filepath.Join(t.TempDir(), "data"),
		helperFirst+"="+strconv.FormatInt(first, 10),
		helperCount+"="+strconv.Itoa(count),
		helperSize+"="+strconv.FormatInt(size, 10),
	)
	for k, v := range srv.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	h := &helper{cmd: cmd, lines: make(chan string, 16)}
	cmd.Stderr = &h.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the helper process: %v", err)
	}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { // a test that failed half-way leaves no process behind
		cmd.Process.Kill()
		cmd.Wait()
	})
	return h
}

// helperTimeout bounds the wait for a helper's next line: its lease wait, a restore and a backup.
const helperTimeout = 2 * time.Minute

// next returns the helper's next line, or "" at the end of its output.
func (h *helper) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if ok && strings.HasPrefix(l, "failed ") {
			t.Fatalf("helper: %s", l)
		}
		return l
	case <-time.After(helperTimeout):
		h.cmd.Process.Kill()
		t.Fatalf("the helper printed nothing for %v; its stderr: %s", helperTimeout, h.stderr.String())
		return ""
	}
}

// progress is what the helpers' lines say about the store: the state that its last completed
// backup saved, and the state whose backup was started after it, if any.
type progress struct {
	saved    int64 // 0: none yet
	inFlight int64 // 0: none
}

func (p *progress) read(t *testing.T, ss *states, line string) {
	t.Helper()
	var k, ns int64
	switch {
	case strings.HasPrefix(line, "start "):
		if _, err := fmt.Sscanf(line, "start %d", &k); err != nil {
			t.Fatalf("helper line %q: %v", line, err)
		}
		p.inFlight = k
	case strings.HasPrefix(line, "saved "):
		if _, err := fmt.Sscanf(line, "saved %d %d", &k, &ns); err != nil {
			t.Fatalf("helper line %q: %v", line, err)
		}
		if k != p.inFlight {
			t.Fatalf("helper line %q: the backup started was of state %d", line, p.inFlight)
		}
		p.saved, p.inFlight = k, 0
	case strings.HasPrefix(line, "restored "):
		want := "restored false -"
		if p.saved != 0 {
			want = "restored true " + ss.tree(t, p.saved).digest()
		}
		if line != want {
			t.Errorf("a helper restored something else than state %d: it printed %q, want %q", p.saved, line, want)
		}
	default:
		t.Fatalf("helper line %q: unexpected", line)
	}
}

// TestSIGKILLDuringBackup kills (SIGKILL) a process backing up a session at random points of
// its backups, many times, for every store. After each kill, the store must hold the archive of
// the last completed backup or the one that was under way (never a partial or a mixed one):
// Extract returns an archive that InspectArchive and Verify accept, and a Session restores it
// into a fresh directory as exactly one of those two profile states, byte for byte. Finally a
// new process restores the last state and backs up a new one normally.
//
// Each store gets between minKills and maxKills kills: kills go on while the store's kills have
// taken less than killBudget (a test's count depends on the machine's speed; what it checks
// does not). With -short, shortKills.
//
// Each helper process first restores the session, as a restarted process does; with a store
// that leases sessions (remoteauth.Leaser), the killed helper still holds the lease, so the next
// one waits for it to expire: the helpers use the shortest TTL, remoteauth.MinLeaseTTL, which
// makes a kill cost about 4 s more with such stores.
func TestSIGKILLDuringBackup(t *testing.T) {
	const size = 4 << 20 // 1.7 MiB in the kept directories, a 1.2 MiB archive
	const (
		minKills, maxKills = 6, 25
		killBudget         = 10 * time.Second
		shortKills         = 3
	)
	lo, hi := minKills, maxKills
	if testing.Short() {
		lo, hi = shortKills, shortKills
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random kill points from seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	forEachStore(t, true, func(t *testing.T, srv testservers.Server) {
		st := openStore(t, srv, srv.URL)
		ss := newStates(t, size)
		var p progress

		// Calibration: one helper backs up state 1 to the end, and says how long it took.
		h := startHelper(t, srv, size, 1, 1)
		var backup time.Duration
		for l := h.next(t); l != ""; l = h.next(t) {
			p.read(t, ss, l)
			var k, ns int64
			if _, err := fmt.Sscanf(l, "saved %d %d", &k, &ns); err == nil {
				backup = time.Duration(ns)
			}
		}
		if err := h.cmd.Wait(); err != nil || p.saved != 1 {
			t.Fatalf("the calibration helper: %v (saved state %d); its stderr: %s", err, p.saved, h.stderr.String())
		}
		checkStore(t, st, ss, p)
		t.Logf("one backup of a %d-byte profile takes %v; kills come within 1.25 times that after a backup starts", size, backup.Round(time.Millisecond))

		next := int64(2)
		// outcomes counts, per kill, what the store held afterwards: "old" (the archive from before
		// the backup that the kill aimed at: it was cut short), "new" (that backup's archive: the
		// kill came after its Save committed), "later" (a later backup's: the kill came after the
		// aimed-at backup had ended), and "exited" counts helpers that ended before the kill.
		outcomes := map[string]int{}
		begin, n := time.Now(), 0
		for i := 0; i < hi && (i < lo || time.Since(begin) < killBudget); i++ {
			n++
			// Kill during the helper's first or second backup, at a uniformly random point of it
			// (or just after it, up to a quarter of its duration).
			target := rng.IntN(2)
			delay := time.Duration(rng.Int64N(int64(backup) * 5 / 4))
			h := startHelper(t, srv, size, next, 4)
			next += 4
			var before, aimed int64
			for started := 0; started <= target; {
				l := h.next(t)
				if l == "" {
					t.Fatalf("kill %d: the helper ended before its backup %d; its stderr: %s", i, target, h.stderr.String())
				}
				p.read(t, ss, l)
				if strings.HasPrefix(l, "start ") {
					started++
					before, aimed = p.saved, p.inFlight
				}
			}
			time.Sleep(delay)
			if err := h.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			for l := h.next(t); l != ""; l = h.next(t) {
				p.read(t, ss, l)
			}
			var ee *exec.ExitError
			if err := h.cmd.Wait(); err == nil {
				outcomes["exited"]++
			} else if !errors.As(err, &ee) {
				t.Fatalf("kill %d: waiting for the helper: %v", i, err)
			}
			k := checkStore(t, st, ss, p)
			switch k {
			case before:
				outcomes["old"]++
			case aimed:
				outcomes["new"]++
			default:
				outcomes["later"]++
			}
			p = progress{saved: k} // the store's state, which the next helper restores
		}

		// A new process restores the last state, and backs up a new one.
		h = startHelper(t, srv, size, next, 1)
		for l := h.next(t); l != ""; l = h.next(t) {
			p.read(t, ss, l)
		}
		if err := h.cmd.Wait(); err != nil || p.saved != next {
			t.Fatalf("the last helper: %v (saved state %d, want %d); its stderr: %s", err, p.saved, next, h.stderr.String())
		}
		checkStore(t, st, ss, p)
		t.Logf("%s: %d SIGKILLs aimed at backups; the store held the archive from before the backup %d times, the backup's own %d times, a later backup's %d times (helpers that ended before the kill: %d); then a new process restored and backed up normally",
			srv.Name, n, outcomes["old"], outcomes["new"], outcomes["later"], outcomes["exited"])
	})
}
