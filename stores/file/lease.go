package filestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// leaseSuffix ends the name of a session's lease directory, <name>.lease.
const leaseSuffix = ".lease"

// tokenLen is the length of a token file's name: a lease token in decimal digits with leading
// zeros, as many as the largest uint64 has.
const tokenLen = 20

// maxAcquireTries bounds how often AcquireLease tries again when another process created the
// token file it meant to create.
const maxAcquireTries = 10

// UnwrittenLeaseAge is how long a token file that stays unreadable (empty, or cut short: its
// creator died between creating and writing it) counts as a live lease, from its modification
// time. A file found unreadable is first read again for 100 ms, since its creator writes it
// right after creating it.
const UnwrittenLeaseAge = time.Minute

// A token file found unreadable is read again unwrittenRereads times, unwrittenReread apart,
// before it counts as unwritten: its creator writes it right after creating it.
const (
	unwrittenRereads = 20
	unwrittenReread  = 5 * time.Millisecond
)

// leaseRecord is the content of a token file.
type leaseRecord struct {
	Owner    string    `json:"owner"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

// AcquireLease grants owner a lease of session for ttl, unless a lease of session is live: then
// the error wraps a *remoteauth.LeaseHeldError naming the holder. It implements
// remoteauth.Leaser; see the package documentation (Leases) for how, and for what it can and
// cannot promise across processes.
func (s *Store) AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (remoteauth.Lease, error) {
	const op = "acquire a lease of"
	if _, err := s.begin(ctx, op, session); err != nil {
		return nil, err
	}
	if err := remoteauth.ValidateLeaseRequest(owner, ttl); err != nil {
		return nil, opError(op, session, err)
	}
	mu := s.lock(session)
	mu.Lock()
	defer mu.Unlock()
	dir := s.leaseDir(session)
	for range maxAcquireTries {
		newest, rec, err := s.newestLease(session)
		if err != nil {
			return nil, opError(op, session, err)
		}
		if newest != 0 && !rec.Released && time.Now().Before(rec.Expires) {
			return nil, opError(op, session, &remoteauth.LeaseHeldError{Session: session, Owner: rec.Owner, Expires: rec.Expires})
		}
		if err := mkdir(dir); err != nil {
			return nil, opError(op, session, err)
		}
		token := newest + 1
		err = createToken(filepath.Join(dir, formatToken(token)), leaseRecord{Owner: owner, Expires: time.Now().Add(ttl)})
		if errors.Is(err, fs.ErrExist) {
			continue // another process granted this token first: look again
		}
		if err != nil {
			return nil, opError(op, session, err)
		}
		s.pruneTokens(dir, token)
		return &lease{s: s, session: session, owner: owner, token: token, ttl: ttl}, nil
	}
	return nil, opError(op, session, fmt.Errorf("other processes kept granting leases while this one tried, %d times", maxAcquireTries))
}

// newestLease returns the newest token of session and its record; token 0 when the session was
// never leased. A newest token file that cannot be read counts as live (see
// UnwrittenLeaseAge).
func (s *Store) newestLease(session string) (uint64, leaseRecord, error) {
	var err error
	unreadable := 0
	for range maxAcquireTries + unwrittenRereads {
		var (
			newest uint64
			b      []byte
		)
		newest, b, err = s.readNewest(session)
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned by another process's grant since the listing: list again
		}
		if err != nil || newest == 0 {
			return newest, leaseRecord{}, err
		}
		var rec leaseRecord
		if json.Unmarshal(b, &rec) != nil || rec.Owner == "" {
			if unreadable++; unreadable <= unwrittenRereads {
				// Most likely another process created the file a moment ago and is writing it.
				time.Sleep(unwrittenReread)
				continue
			}
			path := filepath.Join(s.leaseDir(session), formatToken(newest))
			fi, err := os.Stat(path)
			if err != nil {
				return 0, leaseRecord{}, err
			}
			rec = leaseRecord{Owner: "(unknown: lease file " + path + " is being written)", Expires: fi.ModTime().Add(UnwrittenLeaseAge)}
		}
		return newest, rec, nil
	}
	return 0, leaseRecord{}, fmt.Errorf("the newest lease kept changing, %d times: %w", maxAcquireTries, err)
}

// readNewest lists session's lease directory and reads its newest token file. The error wraps
// fs.ErrNotExist when that file was removed after the listing.
func (s *Store) readNewest(session string) (uint64, []byte, error) {
	dir := s.leaseDir(session)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	var newest uint64
	for _, e := range entries {
		if t, ok := parseToken(e.Name()); ok && t > newest && e.Type().IsRegular() {
			newest = t
		}
	}
	if newest == 0 {
		return 0, nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, formatToken(newest)))
	return newest, b, err
}

// createToken creates the token file path with O_EXCL, so that of the processes that try to
// grant one token exactly one succeeds, and writes rec into it. The error wraps fs.ErrExist
// when the file exists.
func createToken(path string, rec leaseRecord) (err error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Nobody was granted the token: free it rather than leave an unreadable file that
			// blocks the session for UnwrittenLeaseAge.
			_ = os.Remove(path)
		}
	}()
	if err := writeDurably(f, bytes.NewReader(b)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeToken replaces the content of the existing token file path with rec, atomically: a
// temporary file in the store's directory renamed over it.
func (s *Store) writeToken(session, path string, rec leaseRecord) (err error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, tempPattern(fileName(session)))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if err := writeDurably(f, bytes.NewReader(b)); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// pruneTokens removes the token files of dir older than token: only the newest counts. Best
// effort: a file left behind is ignored, and removed by the next grant.
func (s *Store) pruneTokens(dir string, token uint64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if t, ok := parseToken(e.Name()); ok && t < token {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// leaseDir returns the path of session's lease directory.
func (s *Store) leaseDir(session string) string {
	return filepath.Join(s.dir, strings.TrimSuffix(fileName(session), ext)+leaseSuffix)
}

func formatToken(t uint64) string { return fmt.Sprintf("%0*d", tokenLen, t) }

// parseToken returns the token that a token file's name stands for, and false if name is not
// tokenLen decimal digits, or is token 0.
func parseToken(name string) (uint64, bool) {
	if len(name) != tokenLen || strings.Trim(name, "0123456789") != "" {
		return 0, false
	}
	t, err := strconv.ParseUint(name, 10, 64)
	return t, err == nil && t > 0
}

// lease is a lease granted by a Store.
type lease struct {
	s       *Store
	session string
	owner   string
	token   uint64
	ttl     time.Duration
}

func (l *lease) Token() uint64 { return l.token }

// check returns an error wrapping ErrLeaseLost unless l is the newest lease of its session and
// not released. The caller holds the session's lock.
func (l *lease) check() error {
	newest, rec, err := l.s.newestLease(l.session)
	if err != nil {
		return fmt.Errorf("lease %d: reading the newest lease: %w", l.token, err)
	}
	if newest != l.token || rec.Released {
		return fmt.Errorf("lease %d: %w (a newer lease was granted after it expired, or it was released)", l.token, remoteauth.ErrLeaseLost)
	}
	return nil
}

// Renew extends the lease by its ttl from now, unless it was lost.
func (l *lease) Renew(ctx context.Context) error {
	const op = "renew the lease of"
	if _, err := l.s.begin(ctx, op, l.session); err != nil {
		return err
	}
	mu := l.s.lock(l.session)
	mu.Lock()
	defer mu.Unlock()
	if err := l.check(); err != nil {
		return opError(op, l.session, err)
	}
	path := filepath.Join(l.s.leaseDir(l.session), formatToken(l.token))
	if err := l.s.writeToken(l.session, path, leaseRecord{Owner: l.owner, Expires: time.Now().Add(l.ttl)}); err != nil {
		return opError(op, l.session, err)
	}
	// Another process may have granted a newer lease between the check and the rename.
	if err := l.check(); err != nil {
		return opError(op, l.session, err)
	}
	return nil
}

// Release ends the lease, if it is still the newest and not released; otherwise it does
// nothing.
func (l *lease) Release(ctx context.Context) error {
	const op = "release the lease of"
	if _, err := l.s.begin(ctx, op, l.session); err != nil {
		return err
	}
	mu := l.s.lock(l.session)
	mu.Lock()
	defer mu.Unlock()
	if err := l.check(); errors.Is(err, remoteauth.ErrLeaseLost) {
		return nil
	} else if err != nil {
		return opError(op, l.session, err)
	}
	path := filepath.Join(l.s.leaseDir(l.session), formatToken(l.token))
	if err := l.s.writeToken(l.session, path, leaseRecord{Owner: l.owner, Expires: time.Now(), Released: true}); err != nil {
		return opError(op, l.session, err)
	}
	return nil
}

// Save is Store.Save under the lease: the lease is checked under the session's lock just
// before the new archive is renamed into place.
func (l *lease) Save(ctx context.Context, r io.Reader) error {
	path, err := l.s.begin(ctx, "save", l.session)
	if err != nil {
		return err
	}
	if err := l.s.replace(ctx, l.session, path, r, l.check); err != nil {
		return opError("save", l.session, err)
	}
	return nil
}

// Delete is Store.Delete under the lease: the lease is checked under the session's lock before
// anything is removed.
func (l *lease) Delete(ctx context.Context) error {
	path, err := l.s.begin(ctx, "delete", l.session)
	if err != nil {
		return err
	}
	if err := l.s.remove(l.session, path, l.check); err != nil {
		return opError("delete", l.session, err)
	}
	return nil
}
