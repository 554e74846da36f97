// Package encryptedstore is a [remoteauth.Store] that encrypts archives on the client before
// another Store keeps them, with age (https://age-encryption.org, filippo.io/age): X25519 or
// post-quantum hybrid public keys, or a passphrase (scrypt).
//
// A session archive is a logged-in account: whoever holds it is logged in. Wrapped in this
// package, a store (its disk, its backups, its operators, the network on the way to it) only
// ever sees ciphertext, and an archive changed or cut short by anyone without the key is refused
// before anything is extracted. See the README for the threat model: what is covered and what is
// not.
//
//	inner, _ := redisstore.New(ctx, rdb, nil)
//	st, err := encryptedstore.New(inner, &encryptedstore.Options{
//		Identities: ids, // new key first, then the old ones: all of them decrypt
//	})
//
// or, with keys from the environment (see [OptionsFromEnv]):
//
//	st, err := encryptedstore.NewFromEnv(inner)
//
// # Format
//
// Each stored archive is one age file (binary, not armored) of the zip that the engine made.
// Save streams: the zip is encrypted in 64 KiB chunks as the inner store reads it. Extract
// streams too, and every chunk is authenticated before it is written to w; a chunk changed,
// removed, reordered or added, and an archive cut at any point, make Extract fail with an error
// wrapping [remoteauth.ErrCorruptArchive]. Since the last chunk is only known to be the last one
// at the end, Extract may have written authenticated bytes of the start of an archive before it
// finds that its end is missing or changed: treat what it wrote as valid only when it returns
// nil. [remoteauth.Session.Restore] does: it extracts nothing before Extract returned nil, so a
// tampered archive leaves the local profile untouched.
//
// Encrypted archives cannot be read by the Node.js stores or by whatsapp-web.js RemoteAuth,
// which expect a plain zip; and this package refuses plain zips unless Options.AllowPlaintext is
// set (see [ErrPlaintextArchive]).
//
// # Keys and rotation
//
// Archives are written to Options.Recipients (public keys), or with Options.Passphrase, or, when
// neither is set, to the public key of the first of Options.Identities. Any of Options.Identities
// (and the passphrase) decrypts. To rotate a key, put the new identity first and keep the old
// ones after it: new archives are written to the new key, old ones stay readable, and each
// session moves to the new key at its next backup. Remove an old identity once every session
// has been backed up since (a Session backs up at least every BackupInterval while it runs).
//
// # Optional capabilities
//
// Store implements [remoteauth.Lister], [remoteauth.History] and [remoteauth.Leaser] by passing
// them on to the inner store, so that over filestore, memstore or the server stores, `wwebstore
// ls` lists, Session.Restore falls back to the previous archive when the newest is tampered
// with, and Sessions take leases. List and Versions pass through: session names, archive IDs,
// sizes (of the ciphertext) and save times are metadata the inner store sees anyway.
// ExtractVersion decrypts as Extract does. AcquireLease wraps the inner lease so that its Save
// encrypts before the inner store's fenced save; the inner lease is never handed out, since its
// Save would store plaintext. When the inner store lacks a capability, the methods of that
// capability return an error wrapping errors.ErrUnsupported, which callers treat as a store
// without it (the rule of package remoteauth for wrapper stores).
package encryptedstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Defaults and limits of Options.
const (
	// DefaultScryptWorkFactor is the default Options.ScryptWorkFactor: age's default, 2^18
	// iterations, about 1 s of CPU and 256 MiB of memory for each archive written or read with
	// a passphrase.
	DefaultScryptWorkFactor = 18
	// MaxScryptWorkFactor is the highest Options.ScryptWorkFactor: 2^22 takes 4 GiB of memory.
	MaxScryptWorkFactor = 22
)

// ageMagic begins every binary age file.
const ageMagic = "age-encryption.org/v1\n"

var (
	// ErrWrongKey is wrapped by Extract when none of the identities (nor the passphrase) can
	// decrypt the archive: it was written to other keys, or its key block (the file key wrapped
	// for each recipient) is damaged, which cannot be told apart. The error also wraps age's
	// *age.NoIdentityMatchError.
	ErrWrongKey = errors.New("encryptedstore: no identity decrypts the archive")

	// ErrPlaintextArchive is wrapped by Extract when the stored archive is a plain zip, not an
	// age file: written before encryption was turned on, or by a store without it. It is refused
	// unless Options.AllowPlaintext is set.
	ErrPlaintextArchive = errors.New("encryptedstore: the archive is not encrypted")
)

// Options configure a Store. At least one key is required: Recipients with Identities,
// Identities alone, or Passphrase.
type Options struct {
	// Recipients are the public keys every archive is encrypted to (age.ParseRecipients parses
	// "age1…" keys): whoever holds the private key of any of them can read the archives. When
	// empty, archives are encrypted with Passphrase, or else to the public key of the first of
	// Identities. age does not allow mixing a passphrase with public keys: setting both
	// Recipients and Passphrase is an error.
	Recipients []age.Recipient

	// Identities are the private keys that decrypt archives (age.ParseIdentities parses
	// "AGE-SECRET-KEY-1…" lines), tried in turn: keep old keys here after a rotation, so that
	// archives written before it stay readable. Unless Passphrase is set, New checks that
	// Identities decrypt what Recipients encrypt, so that a Store never writes archives it could
	// not read back.
	Identities []age.Identity

	// Passphrase, when set, encrypts archives with scrypt (age's passphrase mode) and decrypts
	// archives written with it. A passphrase is only as strong as it is long: prefer keys, or a
	// long random passphrase.
	Passphrase string

	// ScryptWorkFactor is the base-2 logarithm of scrypt's cost for Passphrase: 1 to
	// MaxScryptWorkFactor, default DefaultScryptWorkFactor. Extract refuses archives whose
	// header asks for more than max(ScryptWorkFactor, DefaultScryptWorkFactor), so that a
	// forged archive cannot make a restore spend gigabytes of memory.
	ScryptWorkFactor int

	// AllowPlaintext lets Extract return a stored archive that is not encrypted as it is,
	// instead of failing with ErrPlaintextArchive. Set it while moving existing sessions to
	// encryption: each one is encrypted at its next Save. Leave it off otherwise: whoever can
	// write to the store could then plant an unencrypted archive.
	AllowPlaintext bool
}

// Store encrypts the archives it saves into another Store and decrypts those it extracts. It is
// safe for concurrent use if the inner Store is. It is a Lister, a History and a Leaser when the
// inner store is one; otherwise those methods return errors wrapping errors.ErrUnsupported (see
// the package documentation).
type Store struct {
	inner          remoteauth.Store
	recipients     []age.Recipient
	identities     []age.Identity
	allowPlaintext bool
}

var (
	_ remoteauth.Store   = (*Store)(nil)
	_ remoteauth.Lister  = (*Store)(nil)
	_ remoteauth.History = (*Store)(nil)
	_ remoteauth.Leaser  = (*Store)(nil)
)

// New returns a Store that keeps its archives in inner, encrypted as opts says. It fails when
// inner is nil, when opts sets no key, when it sets both Recipients and Passphrase, when
// ScryptWorkFactor is out of range, or when Identities cannot decrypt what Recipients encrypt.
func New(inner remoteauth.Store, opts *Options) (*Store, error) {
	if inner == nil {
		return nil, errors.New("encryptedstore: New needs the Store to keep the encrypted archives in (inner is nil)")
	}
	if opts == nil {
		opts = &Options{}
	}
	workFactor := opts.ScryptWorkFactor
	switch {
	case workFactor == 0:
		workFactor = DefaultScryptWorkFactor
	case workFactor < 1 || workFactor > MaxScryptWorkFactor:
		return nil, fmt.Errorf("encryptedstore: ScryptWorkFactor %d is out of range: use 1 to %d, or 0 for the default %d", workFactor, MaxScryptWorkFactor, DefaultScryptWorkFactor)
	}
	s := &Store{inner: inner, allowPlaintext: opts.AllowPlaintext}
	s.identities = append(s.identities, opts.Identities...)
	switch {
	case opts.Passphrase != "" && len(opts.Recipients) > 0:
		return nil, errors.New("encryptedstore: set Recipients or Passphrase, not both: age does not allow mixing a passphrase with public keys (to move from one to the other, put the old passphrase in Identities with age.NewScryptIdentity)")
	case opts.Passphrase != "":
		r, err := age.NewScryptRecipient(opts.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: Passphrase: %w", err)
		}
		r.SetWorkFactor(workFactor)
		s.recipients = []age.Recipient{r}
		id, err := age.NewScryptIdentity(opts.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("encryptedstore: Passphrase: %w", err)
		}
		id.SetMaxWorkFactor(max(workFactor, DefaultScryptWorkFactor))
		s.identities = append(s.identities, id)
		return s, nil
	case len(opts.Recipients) > 0:
		s.recipients = opts.Recipients
	case len(opts.Identities) > 0:
		switch id := opts.Identities[0].(type) {
		case *age.X25519Identity:
			s.recipients = []age.Recipient{id.Recipient()}
		case *age.HybridIdentity:
			s.recipients = []age.Recipient{id.Recipient()}
		default:
			return nil, fmt.Errorf("encryptedstore: the first of Identities is a %T, whose public key is unknown: set Recipients, or put an X25519 or hybrid identity first", id)
		}
	default:
		return nil, errors.New("encryptedstore: no key: set Options.Identities (with Recipients, or alone: the first identity's public key encrypts) or Options.Passphrase; or use NewFromEnv with WWEBSTORE_AGE_IDENTITY, WWEBSTORE_AGE_IDENTITY_FILE or WWEBSTORE_AGE_PASSPHRASE")
	}
	if err := s.checkKeys(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkKeys encrypts a few bytes to the recipients and decrypts them with the identities.
func (s *Store) checkKeys() error {
	const probe = "wwebstore key check"
	if len(s.identities) == 0 {
		return errors.New("encryptedstore: Recipients are set but Identities are not: archives written could not be read back; add the private key of a recipient to Identities")
	}
	var ct bytes.Buffer
	w, err := age.Encrypt(&ct, s.recipients...)
	if err == nil {
		_, err = io.WriteString(w, probe)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return fmt.Errorf("encryptedstore: Recipients: %w", err)
	}
	r, err := age.Decrypt(&ct, s.identities...)
	if err == nil {
		var pt []byte
		if pt, err = io.ReadAll(r); err == nil && string(pt) != probe {
			err = errors.New("the decrypted probe differs")
		}
	}
	if err != nil {
		return fmt.Errorf("encryptedstore: none of Identities decrypts what Recipients encrypt (%w): archives written could not be read back; add the private key of a recipient to Identities", err)
	}
	return nil
}

// SessionExists reports whether the inner store has an archive of session.
func (s *Store) SessionExists(ctx context.Context, session string) (bool, error) {
	return s.inner.SessionExists(ctx, session)
}

// Delete deletes the archive of session from the inner store.
func (s *Store) Delete(ctx context.Context, session string) error {
	return s.inner.Delete(ctx, session)
}

// Close closes the inner store if it is an io.Closer, and otherwise does nothing.
func (s *Store) Close() error {
	if c, ok := s.inner.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Save encrypts what it reads from r, chunk by chunk, and saves the ciphertext in the inner
// store, which keeps its promises: atomic replacement, and an error wrapping r's error or
// ctx's. It holds about 64 KiB of the archive in memory, plus what the inner store buffers.
func (s *Store) Save(ctx context.Context, session string, r io.Reader) error {
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return fmt.Errorf("encryptedstore: save: %w", err)
	}
	er, err := s.encrypt(session, r)
	if err != nil {
		return err
	}
	return s.inner.Save(ctx, session, er)
}

// encrypt returns a reader of the age file of what r holds, encrypted as it is read.
func (s *Store) encrypt(session string, r io.Reader) (io.Reader, error) {
	er, err := age.EncryptReader(r, s.recipients...)
	if err != nil {
		return nil, fmt.Errorf("encryptedstore: save session %q: encrypting: %w", session, err)
	}
	return er, nil
}

// Extract decrypts the archive of session from the inner store into w. Besides the inner store's
// errors (ErrNotFound for a missing session, then nothing is written), it returns an error
// wrapping
//   - remoteauth.ErrCorruptArchive (as a *remoteauth.ArchiveError) when the ciphertext was
//     changed, cut short or extended: authenticated bytes of its start may have been written;
//   - ErrWrongKey when no identity decrypts it; nothing is written;
//   - ErrPlaintextArchive when it is a plain zip and Options.AllowPlaintext is not set; nothing
//     is written;
//   - w's error when w fails.
func (s *Store) Extract(ctx context.Context, session string, w io.Writer) error {
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return fmt.Errorf("encryptedstore: extract: %w", err)
	}
	return s.decryptFrom(session, w, func(pw io.Writer) error { return s.inner.Extract(ctx, session, pw) })
}

// List lists the sessions of the inner store, as it lists them: names and sizes are metadata
// that the inner store sees anyway. Each Size is the size of the ciphertext, about the zip's
// size plus 16 bytes per 64 KiB and a header of about 200 bytes (more with several
// recipients). When the inner store is not a [remoteauth.Lister], List returns an error
// wrapping errors.ErrUnsupported: see "Optional capabilities and wrapper stores" in package
// remoteauth.
func (s *Store) List(ctx context.Context) ([]remoteauth.SessionInfo, error) {
	l, ok := s.inner.(remoteauth.Lister)
	if !ok {
		return nil, fmt.Errorf("encryptedstore: list: the inner store (%T) cannot list its sessions: it does not implement remoteauth.Lister: %w", s.inner, errors.ErrUnsupported)
	}
	return l.List(ctx)
}

// Versions lists the archives that the inner store keeps of session, as it lists them; each
// Size is the ciphertext's, as in List. When the inner store is not a [remoteauth.History],
// Versions and ExtractVersion return an error wrapping errors.ErrUnsupported, and
// [remoteauth.Session.Restore] reads the newest archive alone.
func (s *Store) Versions(ctx context.Context, session string) ([]remoteauth.ArchiveVersion, error) {
	h, err := s.history("versions")
	if err != nil {
		return nil, err
	}
	return h.Versions(ctx, session)
}

// ExtractVersion decrypts the kept archive id of session into w, with Extract's errors and
// promises: besides the inner store's errors (ErrNotFound for an archive it does not keep, then
// nothing is written), an archive changed or cut short gives an error wrapping
// remoteauth.ErrCorruptArchive, which makes Session.Restore fall back to an older archive.
func (s *Store) ExtractVersion(ctx context.Context, session, id string, w io.Writer) error {
	h, err := s.history("extract version")
	if err != nil {
		return err
	}
	if err := remoteauth.ValidateSessionName(session); err != nil {
		return fmt.Errorf("encryptedstore: extract version: %w", err)
	}
	return s.decryptFrom(session, w, func(pw io.Writer) error { return h.ExtractVersion(ctx, session, id, pw) })
}

// history returns the inner store's History, or an error wrapping errors.ErrUnsupported.
func (s *Store) history(op string) (remoteauth.History, error) {
	h, ok := s.inner.(remoteauth.History)
	if !ok {
		return nil, fmt.Errorf("encryptedstore: %s: the inner store (%T) keeps no previous archives: it does not implement remoteauth.History: %w", op, s.inner, errors.ErrUnsupported)
	}
	return h, nil
}

// AcquireLease acquires a lease of session from the inner store, with its promises and errors.
// The Lease it returns encrypts in Save exactly as Store.Save does, then saves under the inner
// lease, whose fencing is the inner store's; Token, Renew, Release and Delete are the inner
// lease's. When the inner store is not a [remoteauth.Leaser], AcquireLease grants nothing and
// returns an error wrapping errors.ErrUnsupported: a Session then writes without a lease.
func (s *Store) AcquireLease(ctx context.Context, session, owner string, ttl time.Duration) (remoteauth.Lease, error) {
	l, ok := s.inner.(remoteauth.Leaser)
	if !ok {
		return nil, fmt.Errorf("encryptedstore: acquire lease: the inner store (%T) grants no leases: it does not implement remoteauth.Leaser: %w", s.inner, errors.ErrUnsupported)
	}
	inner, err := l.AcquireLease(ctx, session, owner, ttl)
	if err != nil {
		return nil, err
	}
	return &lease{s: s, session: session, inner: inner}, nil
}

// lease is a lease of the inner store whose Save encrypts. It does not embed the inner lease, so
// that no method can reach the inner store with plaintext unless it is written here.
type lease struct {
	s       *Store
	session string
	inner   remoteauth.Lease
}

func (l *lease) Token() uint64                     { return l.inner.Token() }
func (l *lease) Renew(ctx context.Context) error   { return l.inner.Renew(ctx) }
func (l *lease) Release(ctx context.Context) error { return l.inner.Release(ctx) }
func (l *lease) Delete(ctx context.Context) error  { return l.inner.Delete(ctx) }

// Save encrypts what it reads from r as Store.Save does, and saves the ciphertext under the
// inner lease: ErrLeaseLost when the lease was lost.
func (l *lease) Save(ctx context.Context, r io.Reader) error {
	er, err := l.s.encrypt(l.session, r)
	if err != nil {
		return err
	}
	return l.inner.Save(ctx, er)
}

// decryptFrom runs extract, which writes a stored archive of session, and decrypts what it
// writes into w, with Extract's errors. An optional capability that reads archives (an older
// version, say) goes through it too.
func (s *Store) decryptFrom(session string, w io.Writer, extract func(io.Writer) error) error {
	pr, pw := io.Pipe()
	src := &recordingReader{r: pr}
	dst := &recordingWriter{w: w}
	done := make(chan error, 1)
	go func() {
		err := s.decrypt(src, dst)
		pr.CloseWithError(errStopped) // unblocks the inner store if decrypt stopped early
		done <- err
	}()
	innerErr := extract(pw)
	pw.CloseWithError(innerErr) // nil: io.EOF
	err := <-done
	switch {
	case dst.err != nil:
		return fmt.Errorf("encryptedstore: extract session %q: %w", session, dst.err)
	case err != nil && src.err == nil: // the archive is at fault, not the inner store
		return fmt.Errorf("encryptedstore: extract session %q: %w", session, err)
	case innerErr != nil:
		return innerErr
	case err != nil:
		return fmt.Errorf("encryptedstore: extract session %q: %w", session, err)
	}
	return nil
}

// errStopped is what the inner store's Extract sees when decryption stopped reading.
var errStopped = errors.New("encryptedstore: decryption stopped reading the archive")

// decrypt copies the plaintext of the age file in src to dst.
func (s *Store) decrypt(src io.Reader, dst io.Writer) error {
	br := bufio.NewReader(src)
	head, err := br.Peek(len(ageMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if string(head) != ageMagic {
		if s.allowPlaintext {
			_, err := br.WriteTo(dst)
			return err
		}
		if bytes.HasPrefix(head, []byte("PK")) {
			return fmt.Errorf("%w: it is a plain zip, written before encryption was turned on or by a store without it; set Options.AllowPlaintext (WWEBSTORE_AGE_ALLOW_PLAINTEXT=1) to read it while sessions move to encryption", ErrPlaintextArchive)
		}
		return &remoteauth.ArchiveError{Kind: remoteauth.ErrCorruptArchive, Reason: "not an age-encrypted archive (no age header)"}
	}
	r, err := age.Decrypt(br, s.identities...)
	if nm := (*age.NoIdentityMatchError)(nil); errors.As(err, &nm) {
		return fmt.Errorf("%w (it is encrypted to %q recipients, or its key block is damaged): add the key it was written with to Identities (WWEBSTORE_AGE_IDENTITY or WWEBSTORE_AGE_IDENTITY_FILE), or the passphrase: %w", ErrWrongKey, nm.StanzaTypes, err)
	}
	if err != nil {
		return &remoteauth.ArchiveError{Kind: remoteauth.ErrCorruptArchive, Reason: "the age header is damaged or was tampered with", Cause: err}
	}
	if _, err := io.Copy(dst, r); err != nil {
		return &remoteauth.ArchiveError{Kind: remoteauth.ErrCorruptArchive, Reason: "the encrypted archive was changed or cut short (age authentication failed)", Cause: err}
	}
	return nil
}

// recordingReader keeps the first error of r other than io.EOF: an error of the inner store.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// recordingWriter keeps the first error of w.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}
