package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
	filestore "github.com/wwebstore/wwebstore/stores/file"
)

// TestLeaseAcrossStores opens one directory with several Store values, which share no lock, as
// processes would: exactly one of concurrent AcquireLease calls wins, and a lease taken over
// through another Store value can no longer save.
func TestLeaseAcrossStores(t *testing.T) {
	dir := t.TempDir()
	const session, n = "RemoteAuth-shared", 8
	stores := make([]*filestore.Store, n)
	for i := range stores {
		st, err := filestore.New(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = st
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		won   []remoteauth.Lease
		start = make(chan struct{})
	)
	for i, st := range stores {
		wg.Go(func() {
			<-start
			l, err := st.AcquireLease(t.Context(), session, fmt.Sprintf("store-%d", i), 500*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, l)
			case !errors.Is(err, remoteauth.ErrLeaseHeld):
				t.Errorf("AcquireLease through store %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d of %d Store values on one directory acquired the session at once, want 1", len(won), n)
	}
	old := won[0]
	if err := old.Save(t.Context(), strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	var next remoteauth.Lease
	for deadline := time.Now().Add(time.Minute); next == nil; time.Sleep(50 * time.Millisecond) {
		l, err := stores[0].AcquireLease(t.Context(), session, "taker", time.Hour)
		switch {
		case err == nil:
			next = l
		case !errors.Is(err, remoteauth.ErrLeaseHeld) || time.Now().After(deadline):
			t.Fatalf("AcquireLease after expiry: %v", err)
		}
	}
	if err := next.Save(t.Context(), strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	if err := old.Save(t.Context(), strings.NewReader("stale")); !errors.Is(err, remoteauth.ErrLeaseLost) {
		t.Errorf("Save of the expired lease after a takeover through another Store: %v, want ErrLeaseLost", err)
	}
	var buf bytes.Buffer
	if err := stores[n-1].Extract(t.Context(), session, &buf); err != nil || buf.String() != "new" {
		t.Errorf("Extract = %q, %v; want the new holder's archive", buf.String(), err)
	}
}

// TestLeaseAcrossProcesses runs AcquireLease in several processes (this test binary, run again)
// that start together: exactly one is granted the lease, and the others are told who holds it.
func TestLeaseAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("FILESTORE_LEASE_CHILD"); dir != "" {
		leaseChild(dir)
		return
	}
	dir := t.TempDir()
	const n = 4
	outs := make([]bytes.Buffer, n)
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmds[i] = exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLeaseAcrossProcesses$")
		cmds[i].Env = append(os.Environ(), "FILESTORE_LEASE_CHILD="+dir, fmt.Sprintf("FILESTORE_LEASE_OWNER=proc-%d", i))
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	// The children wait for this file, so that they ask at about the same moment.
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var winners, losers []string
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i].String())
		}
		out := outs[i].String()
		switch {
		case strings.Contains(out, "won "):
			winners = append(winners, fmt.Sprintf("proc-%d", i))
		case strings.Contains(out, "held by "):
			losers = append(losers, out[strings.Index(out, "held by "):])
		default:
			t.Fatalf("child %d printed %q", i, out)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d processes were granted the lease (%q), want 1", len(winners), n, winners)
	}
	for _, l := range losers {
		if !strings.HasPrefix(l, "held by "+winners[0]+"\n") {
			t.Errorf("a process was told the lease is %q, but %s won", strings.TrimSpace(l), winners[0])
		}
	}
}

// leaseChild is the child process of TestLeaseAcrossProcesses.
func leaseChild(dir string) {
	st, err := filestore.New(dir, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Println("error: no go file")
			os.Exit(2)
		}
	}
	l, err := st.AcquireLease(context.Background(), "RemoteAuth-procs", os.Getenv("FILESTORE_LEASE_OWNER"), time.Hour)
	var held *remoteauth.LeaseHeldError
	switch {
	case err == nil:
		fmt.Println("won", l.Token())
	case errors.As(err, &held):
		fmt.Printf("held by %s\n", held.Owner)
	default:
		fmt.Println("error", err)
		os.Exit(2)
	}
}

// TestLeaseUnwrittenTokenFile checks that a token file that cannot be read (a process died
// between creating and writing it) holds the session for UnwrittenLeaseAge from its
// modification time, and no longer.
func TestLeaseUnwrittenTokenFile(t *testing.T) {
	st, dir := newStore(t)
	const session = "RemoteAuth-unwritten"
	leaseDir := filepath.Join(dir, "+Remote+Auth-unwritten.lease")
	if err := os.Mkdir(leaseDir, 0o700); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(leaseDir, "00000000000000000005")
	if err := os.WriteFile(token, []byte(`{"owner":`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := st.AcquireLease(t.Context(), session, "me", time.Hour)
	var held *remoteauth.LeaseHeldError
	if !errors.As(err, &held) || !strings.Contains(held.Owner, "being written") {
		t.Fatalf("AcquireLease with an unreadable newest token file: %v, want ErrLeaseHeld saying it is being written", err)
	}
	old := time.Now().Add(-filestore.UnwrittenLeaseAge - time.Second)
	if err := os.Chtimes(token, old, old); err != nil {
		t.Fatal(err)
	}
	l, err := st.AcquireLease(t.Context(), session, "me", time.Hour)
	if err != nil {
		t.Fatalf("AcquireLease once the unreadable token file is %v old: %v", filestore.UnwrittenLeaseAge, err)
	}
	if l.Token() != 6 {
		t.Errorf("token %d, want 6: one above the unreadable file's", l.Token())
	}
	if _, err := os.Stat(token); !os.IsNotExist(err) {
		t.Errorf("the older token file is still there after a grant (%v)", err)
	}
}

// TestLeaseLayout checks where leases live: a token file per grant (the older pruned) in
// <name>.lease, which List does not show and Delete keeps, and which a Store opened again on
// the directory honours.
func TestLeaseLayout(t *testing.T) {
	st, dir := newStore(t)
	const session = "RemoteAuth-layout"
	l, err := st.AcquireLease(t.Context(), session, "first", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Save(t.Context(), strings.NewReader("archive")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(t.Context(), session); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(t.Context(), strings.NewReader("again")); err != nil {
		t.Fatal(err)
	}
	list, err := st.List(t.Context())
	if err != nil || len(list) != 1 || list[0].Name != session {
		t.Errorf("List = %v, %v; want the session alone", list, err)
	}
	reopened, err := filestore.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reopened.AcquireLease(t.Context(), session, "second", time.Hour); !errors.Is(err, remoteauth.ErrLeaseHeld) {
		t.Errorf("AcquireLease through a Store opened again: %v, want ErrLeaseHeld", err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	l2, err := reopened.AcquireLease(t.Context(), session, "second", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "+Remote+Auth-layout.lease"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := fmt.Sprintf("%020d", l2.Token()); len(names) != 1 || names[0] != want || l2.Token() <= l.Token() {
		t.Errorf("lease directory holds %q after grants %d and %d, want [%q]", names, l.Token(), l2.Token(), want)
	}
}

// BenchmarkLease measures what a lease adds: a Renew (every TTL/3 while a Session lives), and a
// fenced Save of a 64 KiB archive beside a plain one (the fence reads the lease directory and the
// newest token file).
func BenchmarkLease(b *testing.B) {
	st, err := filestore.New(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	const session = "RemoteAuth-bench"
	l, err := st.AcquireLease(b.Context(), session, "bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 64<<10)
	b.Run("Renew", func(b *testing.B) {
		for b.Loop() {
			if err := l.Renew(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Save", func(b *testing.B) {
		for b.Loop() {
			if err := st.Save(b.Context(), session, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("FencedSave", func(b *testing.B) {
		for b.Loop() {
			if err := l.Save(b.Context(), bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
