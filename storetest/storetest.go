// Package storetest is the conformance suite for [remoteauth.Store] implementations. Every store
// in this repository runs it, and a store written elsewhere should too, from one test function:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) remoteauth.Store {
//			st, err := mystore.New(…) // a fresh, empty store
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(…) // if the store holds resources
//			return st
//		})
//	}
//
// Run checks every promise of the Store doc comment, each in its own subtest. Subtest names are
// stable, so that a failure names the promise that was broken:
//
//	SessionExists                  (false, nil) for a missing session, true after Save, false
//	                               after Delete.
//	RoundTrip/<size>               Extract writes exactly the bytes that Save read. <size> is each
//	                               of empty, 1B, 4KiB+3, 255KiB, 255KiB+1, 1MiB+7, 5MiB+3, 8MiB+1
//	                               and 17MiB+5: around GridFS chunks (255 KiB), S3 parts
//	                               (5 MiB, 8 MiB) and MongoDB's 16 MiB document limit.
//	ShortReads/OneByte             Save copes with a reader that returns one byte per Read,
//	ShortReads/Half                half the bytes asked for,
//	ShortReads/DataWithEOF         or its last bytes together with io.EOF.
//	Overwrite/Grow                 A second Save replaces the first: small then large,
//	Overwrite/Shrink               large then small,
//	Overwrite/SameSize             and two archives of one size.
//	SaveReaderError/NoPrevious     When r fails after 9 MiB, Save returns an error wrapping r's
//	                               error and naming the session, and nothing becomes visible:
//	                               SessionExists is false and Extract wraps ErrNotFound.
//	SaveReaderError/KeepsPrevious  The same, and the previous archive stays whole.
//	SaveReaderError/FirstRead      r fails on its first Read; the previous archive stays whole.
//	SaveCanceled/NoPrevious        When ctx is cancelled after 9 MiB (r goes on without error),
//	                               Save returns an error wrapping context.Canceled and naming the
//	                               session, and nothing becomes visible.
//	SaveCanceled/KeepsPrevious     The same, and the previous archive stays whole.
//	CanceledContext                With a cancelled ctx, every method returns an error wrapping
//	                               context.Canceled, and neither Save nor Delete changes anything.
//	ExtractMissing                 Extract of a missing session returns an error wrapping
//	                               ErrNotFound and naming the session, and writes nothing.
//	ExtractWriterError             When w fails, Extract returns an error wrapping w's error, and
//	                               the archive stays whole.
//	Delete/Missing                 Delete of a missing session returns nil.
//	Delete/Twice                   Deleting a session twice returns nil both times.
//	Delete/ThenExtract             After Delete, Extract wraps ErrNotFound and writes nothing.
//	Delete/ThenSave                A deleted session can be saved again.
//	Isolation                      "a", "a-b", "A", "a_b", "ab", "a-", "RemoteAuth-a" and
//	                               "RemoteAuth-ab" each keep their own archive, and deleting one
//	                               leaves the others whole: no prefix matching, no case folding.
//	ValidNames                     Unusual valid names work: "-", "_", "--", "0", "RemoteAuth",
//	                               and names of remoteauth.MaxSessionNameLen lower-case,
//	                               upper-case and mixed characters.
//	InvalidNames                   For names that remoteauth.ValidateSessionName refuses ("",
//	                               "..", "a/b", "../a", "a b", "a.b", "é", "a\x00", one character
//	                               too long, …), every method returns an error wrapping
//	                               ErrInvalidSession, and Extract writes nothing.
//	Concurrent/SameSession         Concurrent Saves of one session leave one of the inputs, whole.
//	Concurrent/DistinctSessions    Concurrent Saves and Extracts of different sessions keep each
//	                               session's own archive.
//	Concurrent/ExtractDuringSave   An Extract racing repeated Saves writes one of the inputs,
//	                               whole (compared by SHA-256).
//	Large                          A 64 MiB archive, streamed by Save and hashed as Extract writes
//	                               it, round trips. Skipped with -short.
//	List                           Only for a store that implements remoteauth.Lister (skipped
//	                               otherwise, and when List says errors.ErrUnsupported: a
//	                               wrapper of a store that cannot list): an empty store lists
//	                               nothing; List gives the saved
//	                               sessions ("a", "a-b", "A", "RemoteAuth", "RemoteAuth-a", with
//	                               an empty archive among them) sorted by name, once each, with
//	                               their sizes and a save time that is zero or within a day of
//	                               the test's clock; an overwrite shows the new size; a failed
//	                               first Save lists nothing and a failed Save keeps the old
//	                               entry; a deleted session is gone; a cancelled ctx gives an
//	                               error wrapping context.Canceled.
//
// The History group runs only for a store that implements remoteauth.History (one store is made
// to find out, and its Versions called once; the group is skipped when the type assertion fails
// or Versions says errors.ErrUnsupported, as a wrapper of a store without History does). newStore must make stores with their default
// options: the group expects remoteauth.DefaultKeep (2) archives kept per session.
//
//	History/Missing                Versions of a session without an archive is empty, and
//	                               ExtractVersion wraps ErrNotFound, names the session and
//	                               writes nothing.
//	History/KeepsLast              After each of 5 Saves, Versions lists the last 2 archives,
//	                               newest first, with their sizes; ExtractVersion writes each byte
//	                               for byte and Extract the first; an archive keeps its ID as
//	                               newer ones are saved; an evicted ID wraps ErrNotFound.
//	History/Isolation              "a", "a-b", "A" and "RemoteAuth-a" each list their own
//	                               archives; an ID of one is not found through another (unless it
//	                               names that session's own archive); Delete of one leaves the
//	                               others' histories whole.
//	History/Delete                 Delete removes every kept archive: Versions is empty, every old
//	                               ID wraps ErrNotFound, and a new Save starts a new history.
//	History/SaveReaderError        A Save whose reader fails after 9 MiB neither adds nor evicts
//	                               an archive: same IDs, same bytes; nothing for a new session.
//	History/SaveCanceled           The same for a Save whose ctx is cancelled after 9 MiB.
//	History/UnknownID              ExtractVersion of IDs the store never made ("", "0",
//	                               "../<id>", "<id>0", 40 nines, …) wraps ErrNotFound, names the
//	                               session and writes nothing.
//	History/InvalidNames           Versions and ExtractVersion refuse invalid session names with
//	                               ErrInvalidSession, writing nothing.
//	History/CanceledContext        With a cancelled ctx, Versions and ExtractVersion return
//	                               errors wrapping context.Canceled that name the session.
//	History/Concurrent             12 Saves of one session from 4 goroutines, while 2 others list
//	                               and extract: every listing holds at most 2 distinct IDs, every
//	                               ExtractVersion writes a saved archive whole or wraps
//	                               ErrNotFound having written nothing; in the end 2 distinct
//	                               inputs are kept, whole, and Extract writes the first.
//	History/RestoreFallsBack       A remoteauth.Session backs up a small profile, then a copy of
//	                               its archive with a byte of a file's data flipped is saved
//	                               with Save: a fresh Session's Restore into a fresh DataPath
//	                               reports FellBack to the previous archive's ID, with one
//	                               skipped error that wraps ErrCorruptArchive and names the
//	                               newest ID, logs a warning, and restores the previous
//	                               archive's files. Both Sessions end with Abandon, releasing
//	                               their leases when the store is a Leaser.
//
// The Lease group runs only for a store that implements remoteauth.Leaser (one store is made
// and asked for a lease once; the group is skipped when the type assertion fails or
// AcquireLease says errors.ErrUnsupported, as a wrapper of a store without leases does).
// Leases that a test lets expire last 250 ms; waiting for their expiry polls for up to 2 minutes,
// so that a slow machine fails nothing but a store whose leases never expire does.
//
//	Lease/Exclusive                A second AcquireLease of a leased session, by another owner or
//	                               the same one, wraps ErrLeaseHeld and is a *LeaseHeldError
//	                               naming the session, the holder and an expiry near now.
//	Lease/Tokens                   Tokens rise with every grant, across Release, Lease.Delete and
//	                               Store.Delete.
//	Lease/Expiry                   Once a lease expires, another owner acquires the session with
//	                               a higher token.
//	Lease/Renew                    Renew moves the holder's expiry later; a lease of 2 s renewed
//	                               after 1 s is still held after 2.5 s (checked only when the
//	                               machine was quick enough for that to mean something).
//	Lease/RenewAfterTakeover       Renew of a lease that expired and was taken over wraps
//	                               ErrLeaseLost; its Release returns nil and ends nothing.
//	Lease/Release                  After Release another owner acquires at once with a higher
//	                               token; the released lease's Renew, Save and Delete wrap
//	                               ErrLeaseLost and change nothing; a released lease stays lost
//	                               even if no one took the session.
//	Lease/StaleSave                The Save and Delete of a lease taken over wrap ErrLeaseLost,
//	                               and the newer holder's archive stays byte for byte.
//	Lease/StaleSaveInFlight        A Save that was reading when its lease expired and a newer
//	                               holder saved wraps ErrLeaseLost when its reader ends: the token
//	                               is checked when the archive is switched, not when Save starts.
//	Lease/Delete                   Lease.Delete removes the archive (nil when missing) and keeps
//	                               the lease.
//	Lease/SaveFails                A Lease.Save whose reader fails or whose ctx is cancelled after
//	                               9 MiB keeps the previous archive, and the lease stays good.
//	Lease/Isolation                Leases of "a", "a-b", "A" and "RemoteAuth-a" are independent:
//	                               "a" changing hands leaves the others held and writable.
//	Lease/Concurrent               8 goroutines acquire one session at once, 3 rounds: exactly
//	                               one wins each, the losers are told the winner's owner, the
//	                               winner saves while another goroutine renews.
//	Lease/InvalidArguments         Invalid session names wrap ErrInvalidSession; an empty, too
//	                               long or non-UTF-8 owner and a ttl under MinStoreLeaseTTL are
//	                               errors that grant nothing; an owner of MaxLeaseOwnerLen bytes
//	                               is accepted.
//	Lease/CanceledContext          With a cancelled ctx, AcquireLease grants nothing, and Renew,
//	                               Save, Delete and Release return errors wrapping
//	                               context.Canceled and change nothing.
//	Lease/SessionHandover          A rolling deploy of two remoteauth.Sessions of one client, each
//	                               leasing for remoteauth.MinLeaseTTL (3 s) and waiting up to
//	                               2 minutes: A backs up; B's Restore waits for A's lease (it
//	                               logs so) and is still waiting, while A backs up again, after
//	                               A's lease would have expired unrenewed; A's Close takes a
//	                               final backup of new content and releases the lease; B's
//	                               Restore then returns that final backup's files, B holds the
//	                               lease, and B's Close releases it. Sessions left running by a
//	                               failure end with Abandon. Takes about 5 s.
//
// Sizes reported by List and Versions are compared with the archives' sizes, or with what
// Options.StoredSize makes of them (RunWith).
//
// Archives are pseudo-random bytes from a seeded generator: the same on every run, and generated
// while streaming, so the test never holds a large archive in memory. Extract is checked byte for
// byte, and a failure reports the first byte that differs.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Run runs the conformance suite against the stores that newStore makes. newStore is called once
// by each subtest, with that subtest's t, and must return a store that holds no sessions and that
// no other call's store can see (a new temporary directory, database, key prefix or bucket path);
// it releases what it made with t.Cleanup, and reports its own failures with t.Fatal. Subtests run
// one after the other, so newStore need not be safe for concurrent use.
func Run(t *testing.T, newStore func(t *testing.T) remoteauth.Store) {
	RunWith(t, newStore, nil)
}

// Options adapt the suite to stores that change the archives they keep. The zero value (or nil)
// is Run's.
type Options struct {
	// StoredSize returns the size that the store reports (SessionInfo.Size from List,
	// ArchiveVersion.Size from Versions) for an archive of n bytes. nil means n itself. A store
	// that wraps another and transforms what it saves sets it (encryptedstore reports the
	// ciphertext's size); it must be a function of n alone.
	StoredSize func(n int64) int64
}

// RunWith is Run with opts (nil: the defaults).
func RunWith(t *testing.T, newStore func(t *testing.T) remoteauth.Store, opts *Options) {
	size := func(n int64) int64 { return n }
	if opts != nil && opts.StoredSize != nil {
		size = opts.StoredSize
	}
	for _, s := range subtests(size) {
		t.Run(s.name, func(t *testing.T) {
			s.test(t, newStore(t))
		})
	}
	runHistory(t, newStore, size)
	runLease(t, newStore)
}

type subtest struct {
	name string
	test func(t *testing.T, st remoteauth.Store)
}

// subtests lists the suite in the order of the package documentation. size is
// Options.StoredSize.
func subtests(size func(int64) int64) []subtest {
	list := []subtest{{"SessionExists", testSessionExists}}
	for _, size := range []struct {
		name string
		n    int64
	}{
		{"empty", 0},
		{"1B", 1},
		{"4KiB+3", 4*kiB + 3},
		{"255KiB", 255 * kiB},
		{"255KiB+1", 255*kiB + 1},
		{"1MiB+7", miB + 7},
		{"5MiB+3", 5*miB + 3},
		{"8MiB+1", 8*miB + 1},
		{"17MiB+5", 17*miB + 5},
	} {
		list = append(list, subtest{"RoundTrip/" + size.name, func(t *testing.T, st remoteauth.Store) {
			testRoundTrip(t, st, size.n)
		}})
	}
	return append(list, []subtest{
		{"ShortReads/OneByte", shortReads(4*kiB+3, iotest.OneByteReader)},
		{"ShortReads/Half", shortReads(miB+1, iotest.HalfReader)},
		{"ShortReads/DataWithEOF", shortReads(miB+1, iotest.DataErrReader)},
		{"Overwrite/Grow", overwrite(300*kiB+1, 9*miB+1)},
		{"Overwrite/Shrink", overwrite(9*miB+1, 300*kiB+1)},
		{"Overwrite/SameSize", overwrite(miB+7, miB+7)},
		{"SaveReaderError/NoPrevious", saveReaderError(false, failAfter)},
		{"SaveReaderError/KeepsPrevious", saveReaderError(true, failAfter)},
		{"SaveReaderError/FirstRead", saveReaderError(true, 0)},
		{"SaveCanceled/NoPrevious", saveCanceled(false)},
		{"SaveCanceled/KeepsPrevious", saveCanceled(true)},
		{"CanceledContext", testCanceledContext},
		{"ExtractMissing", testExtractMissing},
		{"ExtractWriterError", testExtractWriterError},
		{"Delete/Missing", testDeleteMissing},
		{"Delete/Twice", testDeleteTwice},
		{"Delete/ThenExtract", testDeleteThenExtract},
		{"Delete/ThenSave", testDeleteThenSave},
		{"Isolation", testIsolation},
		{"ValidNames", testValidNames},
		{"InvalidNames", testInvalidNames},
		{"Concurrent/SameSession", testConcurrentSameSession},
		{"Concurrent/DistinctSessions", testConcurrentDistinctSessions},
		{"Concurrent/ExtractDuringSave", testExtractDuringSave},
		{"Large", testLarge},
		{"List", func(t *testing.T, st remoteauth.Store) { testList(t, st, size) }},
	}...)
}

var (
	errRead  = errors.New("storetest: the reader failed on purpose")
	errWrite = errors.New("storetest: the writer failed on purpose")
)

// failAfter is where failing and cancelling readers stop: past several GridFS chunks and a
// whole S3 part, so that a store has sent data to its server before the failure.
const failAfter = 9*miB + 17

func testSessionExists(t *testing.T, st remoteauth.Store) {
	const session = "RemoteAuth-exists"
	checkExists(t, st, session, false)
	save(t, st, session, content{seed: 1, size: 1000})
	checkExists(t, st, session, true)
	del(t, st, session)
	checkExists(t, st, session, false)
}

func testRoundTrip(t *testing.T, st remoteauth.Store, size int64) {
	const session = "RemoteAuth-roundtrip"
	c := content{seed: uint64(size) + 2, size: size}
	save(t, st, session, c)
	checkExists(t, st, session, true)
	checkArchive(t, st, session, c)
}

func shortReads(size int64, wrap func(io.Reader) io.Reader) func(*testing.T, remoteauth.Store) {
	return func(t *testing.T, st remoteauth.Store) {
		const session = "RemoteAuth-shortreads"
		c := content{seed: 3, size: size}
		if err := st.Save(t.Context(), session, wrap(c.reader())); err != nil {
			t.Fatalf("Save(%q, %s): %v", session, c, err)
		}
		checkArchive(t, st, session, c)
	}
}

func overwrite(first, second int64) func(*testing.T, remoteauth.Store) {
	return func(t *testing.T, st remoteauth.Store) {
		const session = "RemoteAuth-overwrite"
		a, b := content{seed: 4, size: first}, content{seed: 5, size: second}
		save(t, st, session, a)
		checkArchive(t, st, session, a)
		save(t, st, session, b)
		checkArchive(t, st, session, b)
		save(t, st, session, a)
		checkArchive(t, st, session, a)
	}
}

func saveReaderError(previous bool, after int64) func(*testing.T, remoteauth.Store) {
	return func(t *testing.T, st remoteauth.Store) {
		const session = "RemoteAuth-readerfails"
		prev := content{seed: 6, size: miB + 7}
		if previous {
			save(t, st, session, prev)
		}
		r := &failingReader{r: content{seed: 7, size: after + miB}.reader(), n: after, err: errRead}
		err := st.Save(t.Context(), session, r)
		checkError(t, err, errRead, fmt.Sprintf("Save(%q) with a reader failing after %d bytes", session, after), session)
		if previous {
			checkArchive(t, st, session, prev)
		} else {
			checkMissing(t, st, session)
		}
	}
}

func saveCanceled(previous bool) func(*testing.T, remoteauth.Store) {
	return func(t *testing.T, st remoteauth.Store) {
		const session = "RemoteAuth-canceled"
		prev := content{seed: 8, size: miB + 7}
		if previous {
			save(t, st, session, prev)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &cancelingReader{r: content{seed: 9, size: failAfter + miB}.reader(), n: failAfter, cancel: cancel}
		err := st.Save(ctx, session, r)
		checkError(t, err, context.Canceled, fmt.Sprintf("Save(%q) with ctx cancelled after %d bytes", session, failAfter), session)
		if previous {
			checkArchive(t, st, session, prev)
		} else {
			checkMissing(t, st, session)
		}
	}
}

func testCanceledContext(t *testing.T, st remoteauth.Store) {
	const session, fresh = "RemoteAuth-canceled", "RemoteAuth-canceled-fresh"
	prev := content{seed: 10, size: 100 * kiB}
	save(t, st, session, prev)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := st.SessionExists(ctx, session)
	checkError(t, err, context.Canceled, fmt.Sprintf("SessionExists(%q) with a cancelled ctx", session), session)
	err = st.Save(ctx, session, content{seed: 11, size: 100 * kiB}.reader())
	checkError(t, err, context.Canceled, fmt.Sprintf("Save(%q) with a cancelled ctx", session), session)
	err = st.Save(ctx, fresh, content{seed: 12, size: 100 * kiB}.reader())
	checkError(t, err, context.Canceled, fmt.Sprintf("Save(%q) with a cancelled ctx", fresh), fresh)
	err = st.Extract(ctx, session, io.Discard)
	checkError(t, err, context.Canceled, fmt.Sprintf("Extract(%q) with a cancelled ctx", session), session)
	err = st.Delete(ctx, session)
	checkError(t, err, context.Canceled, fmt.Sprintf("Delete(%q) with a cancelled ctx", session), session)

	checkArchive(t, st, session, prev)
	checkMissing(t, st, fresh)
}

func testExtractMissing(t *testing.T, st remoteauth.Store) {
	checkMissing(t, st, "RemoteAuth-missing")
	save(t, st, "RemoteAuth-present", content{seed: 13, size: 1000})
	checkMissing(t, st, "RemoteAuth-missing")
}

func testExtractWriterError(t *testing.T, st remoteauth.Store) {
	const session = "RemoteAuth-writerfails"
	c := content{seed: 14, size: 3*miB + 1}
	save(t, st, session, c)
	for _, after := range []int64{0, miB} {
		err := st.Extract(t.Context(), session, &failingWriter{n: after, err: errWrite})
		checkError(t, err, errWrite, fmt.Sprintf("Extract(%q) into a writer failing after %d bytes", session, after), session)
	}
	checkArchive(t, st, session, c)
}

func testDeleteMissing(t *testing.T, st remoteauth.Store) {
	if err := st.Delete(t.Context(), "RemoteAuth-missing"); err != nil {
		t.Errorf("Delete of a missing session: %v, want nil", err)
	}
	save(t, st, "RemoteAuth-present", content{seed: 15, size: 1000})
	if err := st.Delete(t.Context(), "RemoteAuth-missing"); err != nil {
		t.Errorf("Delete of a missing session in a store with another session: %v, want nil", err)
	}
	checkArchive(t, st, "RemoteAuth-present", content{seed: 15, size: 1000})
}

func testDeleteTwice(t *testing.T, st remoteauth.Store) {
	const session = "RemoteAuth-deletetwice"
	save(t, st, session, content{seed: 16, size: 1000})
	del(t, st, session)
	if err := st.Delete(t.Context(), session); err != nil {
		t.Errorf("second Delete(%q): %v, want nil", session, err)
	}
	checkMissing(t, st, session)
}

func testDeleteThenExtract(t *testing.T, st remoteauth.Store) {
	const session = "RemoteAuth-deleted"
	save(t, st, session, content{seed: 17, size: 300*kiB + 1})
	del(t, st, session)
	checkMissing(t, st, session)
}

func testDeleteThenSave(t *testing.T, st remoteauth.Store) {
	const session = "RemoteAuth-resaved"
	save(t, st, session, content{seed: 18, size: 300*kiB + 1})
	del(t, st, session)
	c := content{seed: 19, size: 1000}
	save(t, st, session, c)
	checkArchive(t, st, session, c)
}

func testIsolation(t *testing.T, st remoteauth.Store) {
	names := []string{"a", "a-b", "A", "a_b", "ab", "a-", "RemoteAuth-a", "RemoteAuth-ab"}
	archives := make([]content, len(names))
	for i, name := range names {
		archives[i] = content{seed: 100 + uint64(i), size: 1000 + int64(i)*37}
		save(t, st, name, archives[i])
	}
	for i, name := range names {
		checkArchive(t, st, name, archives[i])
	}
	if t.Failed() {
		t.Fatal("the failures above followed the Saves of all sessions")
	}
	for i, name := range names {
		del(t, st, name)
		checkMissing(t, st, name)
		for j := i + 1; j < len(names); j++ {
			checkExists(t, st, names[j], true)
			checkArchive(t, st, names[j], archives[j])
		}
		if t.Failed() {
			t.Fatalf("the failures above followed Delete(%q)", name)
		}
	}
}

func testValidNames(t *testing.T, st remoteauth.Store) {
	names := []string{
		"-", "_", "--", "0", "RemoteAuth",
		strings.Repeat("a", remoteauth.MaxSessionNameLen),
		strings.Repeat("Z", remoteauth.MaxSessionNameLen),
		("RemoteAuth-" + strings.Repeat("xY9_", remoteauth.MaxSessionNameLen))[:remoteauth.MaxSessionNameLen],
	}
	archives := make([]content, len(names))
	for i, name := range names {
		if err := remoteauth.ValidateSessionName(name); err != nil {
			t.Fatalf("storetest: %v", err) // the suite is wrong, not the store
		}
		archives[i] = content{seed: 200 + uint64(i), size: 1000 + int64(i)*37}
		save(t, st, name, archives[i])
	}
	for i, name := range names {
		checkExists(t, st, name, true)
		checkArchive(t, st, name, archives[i])
	}
	for _, name := range names {
		del(t, st, name)
		checkMissing(t, st, name)
	}
}

func testInvalidNames(t *testing.T, st remoteauth.Store) {
	ctx := t.Context()
	names := []string{
		"", ".", "..", "a/b", "../a", "a\\b", "a:b", "a b", "a.b", "a\n", "é", "a\x00",
		strings.Repeat("a", remoteauth.MaxSessionNameLen+1),
	}
	for _, name := range names {
		if remoteauth.ValidateSessionName(name) == nil {
			t.Fatalf("storetest: ValidateSessionName accepts %q", name) // the suite is wrong
		}
		if _, err := st.SessionExists(ctx, name); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("SessionExists(%q): error %v, want one wrapping remoteauth.ErrInvalidSession", name, err)
		}
		if err := st.Save(ctx, name, strings.NewReader("archive")); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("Save(%q): error %v, want one wrapping remoteauth.ErrInvalidSession", name, err)
		}
		var w countWriter
		if err := st.Extract(ctx, name, &w); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("Extract(%q): error %v, want one wrapping remoteauth.ErrInvalidSession", name, err)
		}
		if w.n != 0 {
			t.Errorf("Extract(%q) wrote %d bytes, want none", name, w.n)
		}
		if err := st.Delete(ctx, name); !errors.Is(err, remoteauth.ErrInvalidSession) {
			t.Errorf("Delete(%q): error %v, want one wrapping remoteauth.ErrInvalidSession", name, err)
		}
	}
}

func testConcurrentSameSession(t *testing.T, st remoteauth.Store) {
	const session, n = "RemoteAuth-contended", 8
	inputs := make([]content, n)
	for i := range inputs {
		inputs[i] = content{seed: 300 + uint64(i), size: miB + int64(i)*4099}
	}
	var wg sync.WaitGroup
	for _, c := range inputs {
		wg.Go(func() {
			if err := st.Save(t.Context(), session, c.reader()); err != nil {
				t.Errorf("concurrent Save(%q, %s): %v", session, c, err)
			}
		})
	}
	wg.Wait()
	checkOneOf(t, st, session, inputs)
}

func testConcurrentDistinctSessions(t *testing.T, st remoteauth.Store) {
	const n, rounds = 8, 3
	version := func(i, r int) content { // session i's archive in round r
		k := i*rounds + r
		return content{seed: 400 + uint64(k), size: 256*kiB + int64(k)}
	}
	var wg sync.WaitGroup
	for i := range n {
		session := fmt.Sprintf("RemoteAuth-parallel-%d", i)
		wg.Go(func() {
			for r := range rounds {
				c := version(i, r)
				if err := st.Save(t.Context(), session, c.reader()); err != nil {
					t.Errorf("Save(%q, %s): %v", session, c, err)
					return
				}
				checkArchive(t, st, session, c)
			}
		})
	}
	wg.Wait()
	for i := range n {
		checkArchive(t, st, fmt.Sprintf("RemoteAuth-parallel-%d", i), version(i, rounds-1))
	}
}

func testExtractDuringSave(t *testing.T, st remoteauth.Store) {
	const session, saves, readers = "RemoteAuth-racing", 16, 2
	inputs := make([]content, 4)
	sums := make(map[[sha256.Size]byte]content, len(inputs))
	for i := range inputs {
		inputs[i] = content{seed: 500 + uint64(i), size: 2*miB + int64(i)*1021}
		sums[inputs[i].sum()] = inputs[i]
	}
	save(t, st, session, inputs[0])

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := 1; i <= saves; i++ {
			c := inputs[i%len(inputs)]
			if err := st.Save(t.Context(), session, c.reader()); err != nil {
				t.Errorf("Save(%q, %s): %v", session, c, err)
				return
			}
		}
	})
	for range readers {
		wg.Go(func() {
			for {
				w := newHashWriter()
				if err := st.Extract(t.Context(), session, w); err != nil {
					t.Errorf("Extract(%q) during Saves: %v", session, err)
					return
				}
				if _, ok := sums[w.sum()]; !ok {
					t.Errorf("Extract(%q) during Saves wrote %d bytes that are none of the saved archives", session, w.n)
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	checkOneOf(t, st, session, inputs)
}

func testLarge(t *testing.T, st remoteauth.Store) {
	if testing.Short() {
		t.Skip("skipping the 64 MiB round trip in -short mode")
	}
	const session = "RemoteAuth-large"
	c := content{seed: 64, size: 64*miB + 13}
	save(t, st, session, c)
	w := newHashWriter()
	if err := st.Extract(t.Context(), session, w); err != nil {
		t.Fatalf("Extract(%q): %v", session, err)
	}
	if w.n != c.size || w.sum() != c.sum() {
		t.Errorf("Extract(%q) wrote %d bytes with SHA-256 %x, want the saved %s with SHA-256 %x", session, w.n, w.sum(), c, c.sum())
	}
}

// save saves c as session's archive, and stops the test if Save fails.
func save(t *testing.T, st remoteauth.Store, session string, c content) {
	t.Helper()
	if err := st.Save(t.Context(), session, c.reader()); err != nil {
		t.Fatalf("Save(%q, %s): %v", session, c, err)
	}
}

// del deletes session, and stops the test if Delete fails.
func del(t *testing.T, st remoteauth.Store, session string) {
	t.Helper()
	if err := st.Delete(t.Context(), session); err != nil {
		t.Fatalf("Delete(%q): %v", session, err)
	}
}

// checkExists checks that SessionExists reports want for session.
func checkExists(t *testing.T, st remoteauth.Store, session string, want bool) {
	t.Helper()
	got, err := st.SessionExists(t.Context(), session)
	if err != nil || got != want {
		t.Errorf("SessionExists(%q) = %v, %v; want %v, nil", session, got, err, want)
	}
}

// checkArchive checks that Extract writes exactly c for session.
func checkArchive(t *testing.T, st remoteauth.Store, session string, c content) {
	t.Helper()
	v := newVerifier(c)
	if err := st.Extract(t.Context(), session, v); err != nil {
		t.Errorf("Extract(%q): %v; want the saved %s", session, err, c)
		return
	}
	v.check(t, session, c)
}

// checkMissing checks that session has no archive: SessionExists is (false, nil), and Extract
// returns an error wrapping ErrNotFound that names the session, and writes nothing.
func checkMissing(t *testing.T, st remoteauth.Store, session string) {
	t.Helper()
	checkExists(t, st, session, false)
	var w countWriter
	err := st.Extract(t.Context(), session, &w)
	checkError(t, err, remoteauth.ErrNotFound, fmt.Sprintf("Extract(%q) of a missing session", session), session)
	if w.n != 0 {
		t.Errorf("Extract(%q) of a missing session wrote %d bytes, want none", session, w.n)
	}
}

// checkOneOf checks that session's archive is one of inputs, whole.
func checkOneOf(t *testing.T, st remoteauth.Store, session string, inputs []content) {
	t.Helper()
	w := newHashWriter()
	if err := st.Extract(t.Context(), session, w); err != nil {
		t.Errorf("Extract(%q): %v", session, err)
		return
	}
	for _, c := range inputs {
		if w.n == c.size && w.sum() == c.sum() {
			return
		}
	}
	t.Errorf("Extract(%q) wrote %d bytes that are none of the %d archives saved concurrently", session, w.n, len(inputs))
}

// checkError checks that err, returned by what, wraps target and names session.
func checkError(t *testing.T, err, target error, what, session string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: no error, want one wrapping %q", what, target)
	case !errors.Is(err, target):
		t.Errorf("%s: error %q, want one wrapping %q", what, err, target)
	case !strings.Contains(err.Error(), session):
		t.Errorf("%s: error %q does not name the session", what, err)
	}
}

func testList(t *testing.T, st remoteauth.Store, size func(int64) int64) {
	l, ok := st.(remoteauth.Lister)
	if !ok {
		t.Skipf("%T does not implement remoteauth.Lister", st)
	}
	if _, err := l.List(t.Context()); errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%T implements remoteauth.Lister but its List says it cannot list (a wrapper of a store without Lister): %v", st, err)
	}
	checkList(t, l, nil, size)
	sessions := map[string]content{
		"a":            {seed: 20, size: 10},
		"a-b":          {seed: 21, size: 0},
		"A":            {seed: 22, size: kiB + 3},
		"RemoteAuth":   {seed: 23, size: 300*kiB + 1},
		"RemoteAuth-a": {seed: 24, size: 2*miB + 5},
	}
	for name, c := range sessions {
		save(t, st, name, c)
	}
	want := map[string]int64{}
	for name, c := range sessions {
		want[name] = c.size
	}
	checkList(t, l, want, size)

	save(t, st, "a", content{seed: 25, size: 77})
	want["a"] = 77
	failing := &failingReader{r: content{seed: 26, size: 2 * miB}.reader(), n: miB, err: errRead}
	if err := st.Save(t.Context(), "RemoteAuth-new", failing); err == nil {
		t.Fatal("Save with a failing reader returned nil")
	}
	failing = &failingReader{r: content{seed: 27, size: 2 * miB}.reader(), n: miB, err: errRead}
	if err := st.Save(t.Context(), "A", failing); err == nil {
		t.Fatal("Save with a failing reader returned nil")
	}
	del(t, st, "a-b")
	delete(want, "a-b")
	checkList(t, l, want, size)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.List(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled ctx: %v, want an error wrapping context.Canceled", err)
	}
}

// checkList checks that List reports exactly the sessions of want, with their sizes (as size
// maps them), sorted by name, and that each is a session that exists.
func checkList(t *testing.T, l remoteauth.Lister, want map[string]int64, size func(int64) int64) {
	t.Helper()
	before := time.Now()
	got, err := l.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var names []string
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)
	var gotNames []string
	for _, s := range got {
		gotNames = append(gotNames, s.Name)
	}
	if !slices.Equal(gotNames, names) {
		t.Fatalf("List = %q, want %q", gotNames, names)
	}
	for _, s := range got {
		if w := size(want[s.Name]); s.Size != w {
			t.Errorf("List: session %q has size %d, want %d (an archive of %d bytes)", s.Name, s.Size, w, want[s.Name])
		}
		// Not a timing assertion: a save time a day off means a wrong field or unit.
		if !s.Saved.IsZero() && (s.Saved.Before(before.Add(-24*time.Hour)) || s.Saved.After(before.Add(24*time.Hour))) {
			t.Errorf("List: session %q was saved at %v, more than a day from now (%v)", s.Name, s.Saved, before)
		}
		if st, ok := l.(remoteauth.Store); ok {
			checkExists(t, st, s.Name, true)
		}
	}
}
