package remoteauth

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is wrapped by Store.Extract when the session has no archive.
	ErrNotFound = errors.New("remoteauth: session not found")

	// ErrInvalidSession is wrapped by every error about a session name or clientId that does not
	// pass ValidateSessionName or SessionName.
	ErrInvalidSession = errors.New("remoteauth: invalid session name")

	// ErrCorruptArchive is wrapped when an archive cannot be read whole: not a zip, truncated, a bad
	// CRC, a size that does not match its header.
	ErrCorruptArchive = errors.New("remoteauth: corrupt archive")

	// ErrUnsafeArchive is wrapped when an archive holds an entry that must never be extracted: an
	// absolute path, a ".." element, a symlink or other non-regular file, a duplicate name.
	ErrUnsafeArchive = errors.New("remoteauth: unsafe archive")

	// ErrArchiveTooLarge is wrapped when an archive passes one of the ExtractLimits (a zip bomb, or
	// limits set too low for the profile).
	ErrArchiveTooLarge = errors.New("remoteauth: archive over limits")

	// ErrClosed is returned by the methods of a Session after Close or Delete.
	ErrClosed = errors.New("remoteauth: session closed")

	// ErrNothingToBackUp is returned by Backup when the kept directories of the profile hold no
	// file: uploading that would replace a good remote session with an empty one.
	ErrNothingToBackUp = errors.New("remoteauth: nothing to back up")
)

// ErrProfileChanged reports that the browser changed the profile under a snapshot in a way that
// could make the archive inconsistent: a file appeared or vanished (a LevelDB compaction), or was
// rewritten while it was read. The engine then abandons the upload (the store keeps its previous
// archive) and takes the snapshot again; Backup returns an error wrapping ErrProfileChanged when
// this happened Options.SnapshotAttempts times in a row.
var ErrProfileChanged = errors.New("remoteauth: the profile changed during the snapshot")

// ArchiveError describes why an archive was refused. Kind is ErrCorruptArchive, ErrUnsafeArchive
// or ErrArchiveTooLarge; Cause, when set, is the underlying error (for example zip.ErrChecksum).
// errors.Is matches both.
type ArchiveError struct {
	Kind   error
	Entry  string // the entry's name in the archive; empty when the archive as a whole is at fault
	Reason string // what is wrong, for people
	Cause  error
}

func (e *ArchiveError) Error() string {
	msg := e.Kind.Error() + ": "
	if e.Entry != "" {
		msg += fmt.Sprintf("entry %q: ", e.Entry)
	}
	msg += e.Reason
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns Kind and Cause, so that errors.Is and errors.As see both.
func (e *ArchiveError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}
