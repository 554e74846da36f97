package main

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// errTooLarge is returned when a store sends more than remoteauth.DefaultExtractLimits allow.
var errTooLarge = errors.New("the archive is larger than MaxArchiveSize")

// limitWriter fails once more than max bytes were written.
type limitWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.max {
		return 0, fmt.Errorf("%w (%d bytes; remoteauth.DefaultExtractLimits)", errTooLarge, l.max)
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}

// archiveFile is a session's archive downloaded into a temporary file.
type archiveFile struct {
	*os.File
	size   int64
	sha256 string
}

// close removes the temporary file.
func (a *archiveFile) close() {
	a.File.Close()
	os.Remove(a.Name())
}

// download fetches session's archive into a temporary file (in $TMPDIR) that the caller removes
// with close, up to remoteauth.DefaultExtractLimits.MaxArchiveSize bytes.
func (c *cli) download(ctx context.Context, st remoteauth.Store, session string) (*archiveFile, error) {
	f, err := os.CreateTemp("", "wwebstore-"+session+"-*.zip")
	if err != nil {
		return nil, fmt.Errorf("a temporary file for the archive: %w (set TMPDIR to a directory with room)", err)
	}
	a := &archiveFile{File: f}
	h := sha256.New()
	lw := &limitWriter{w: f, max: remoteauth.DefaultExtractLimits.MaxArchiveSize}
	p := c.startProgress("download "+session, -1)
	err = st.Extract(ctx, session, io.MultiWriter(lw, h, p.writer()))
	p.finish()
	if err != nil {
		a.close()
		return nil, err
	}
	a.size, a.sha256 = lw.n, hex.EncodeToString(h.Sum(nil))
	return a, nil
}

// verifyResult is the JSON document of verify.
type verifyResult struct {
	Store       string `json:"store"`
	Session     string `json:"session"`
	OK          bool   `json:"ok"`
	ArchiveSize int64  `json:"archive_bytes"`
	SHA256      string `json:"sha256"`
	Entries     int    `json:"entries"`
	Files       int    `json:"files"`
	Bytes       int64  `json:"bytes"`
	Problem     string `json:"problem,omitempty"`
}

// openArchiveCommand parses the flags of verify and inspect, opens the store and downloads the
// archive.
func (c *cli) openArchiveCommand(ctx context.Context, summary, example string, args []string) (store, session string, a *archiveFile, err error) {
	fs := c.flags(summary, example)
	storeURL := c.storeFlag(fs, "store", EnvStore, "the store")
	name := fs.String("session", "", "the session name, such as RemoteAuth-alice (required)")
	if err := c.parse(fs, args); err != nil {
		return "", "", nil, err
	}
	if err := checkSession(*name); err != nil {
		return "", "", nil, err
	}
	st, rawURL, err := c.openStoreFlag(ctx, *storeURL)
	if err != nil {
		return "", "", nil, err
	}
	store = c.storeName(rawURL)
	a, err = c.download(ctx, st, *name)
	if errors.Is(err, remoteauth.ErrNotFound) {
		return "", "", nil, fmt.Errorf("%w: %s has no session %q (list its sessions with: wwebstore ls)", remoteauth.ErrNotFound, store, *name)
	}
	if err != nil {
		return "", "", nil, fmt.Errorf("download session %q from %s: %w", *name, store, err)
	}
	return store, *name, a, nil
}

func runVerify(ctx context.Context, c *cli, args []string) error {
	store, session, a, err := c.openArchiveCommand(ctx, `Downloads a session's archive into a temporary file and checks it as a restore would, without
extracting anything: a readable zip, safe entry names (no absolute paths, "..", symlinks or
duplicates), supported compression, the default limits (4 GiB archive, 100,000 entries, 2 GiB a
file, 8 GiB in all) and the size and CRC of every file. Exit code 1 and the entry at fault when
it fails.`,
		`wwebstore verify --store env:DATABASE_URL --session RemoteAuth-alice`, args)
	if err != nil {
		return err
	}
	defer a.close()
	out := verifyResult{Store: store, Session: session, ArchiveSize: a.size, SHA256: a.sha256}
	info, err := remoteauth.InspectArchive(a, a.size, remoteauth.ExtractLimits{})
	if info != nil {
		out.Entries, out.Files, out.Bytes = len(info.Entries), info.Files, info.Bytes
		if err == nil {
			err = info.Verify(ctx)
		}
	}
	if err != nil {
		out.Problem = err.Error()
		err = fmt.Errorf("session %q of %s is damaged: %w; restoring it would fail and leave the profile as it is: back up the profile again, or copy a good archive from another store", session, store, err)
		if c.json {
			c.result(out, nil)
			return silentError{err}
		}
		return err
	}
	out.OK = true
	return c.result(out, func(w io.Writer) {
		fmt.Fprintf(w, "ok: session %s of %s: archive of %s (sha256 %s), %d entries, %d files, %s uncompressed; every CRC matches\n",
			session, store, mib(a.size), a.sha256, out.Entries, out.Files, mib(out.Bytes))
	})
}

// entryDoc is one entry in inspect's JSON document.
type entryDoc struct {
	Name           string    `json:"name"`
	Mode           string    `json:"mode"`
	Method         string    `json:"method"`
	Size           int64     `json:"size"`
	CompressedSize int64     `json:"compressed_size"`
	CRC32          string    `json:"crc32"`
	Modified       time.Time `json:"modified"`
}

// inspectResult is the JSON document of inspect.
type inspectResult struct {
	Store       string     `json:"store"`
	Session     string     `json:"session"`
	ArchiveSize int64      `json:"archive_bytes"`
	SHA256      string     `json:"sha256"`
	Files       int        `json:"files"`
	Bytes       int64      `json:"bytes"`
	Entries     []entryDoc `json:"entries"`
	Problem     string     `json:"problem,omitempty"`
}

func methodName(m uint16) string {
	switch m {
	case zip.Store:
		return "stored"
	case zip.Deflate:
		return "deflated"
	}
	return fmt.Sprintf("method %d", m)
}

func runInspect(ctx context.Context, c *cli, args []string) error {
	store, session, a, err := c.openArchiveCommand(ctx, `Downloads a session's archive and lists its entries from the zip central directory: mode, size,
compressed size, compression (stored or deflated), modification time and name, in archive order,
then a summary. It reads no entry's data (verify does); an archive that fails the checks of a
restore is listed anyway, with the problem.`,
		`wwebstore inspect --store file:///var/lib/wwebstore --session RemoteAuth-alice | less`, args)
	if err != nil {
		return err
	}
	defer a.close()
	info, checkErr := remoteauth.InspectArchive(a, a.size, remoteauth.ExtractLimits{})
	if info == nil {
		return fmt.Errorf("session %q of %s: %w", session, store, checkErr)
	}
	out := inspectResult{Store: store, Session: session, ArchiveSize: a.size, SHA256: a.sha256, Files: info.Files, Bytes: info.Bytes, Entries: make([]entryDoc, 0, len(info.Entries))}
	for _, e := range info.Entries {
		out.Entries = append(out.Entries, entryDoc{Name: e.Name, Mode: e.Mode.String(), Method: methodName(e.Method), Size: e.Size,
			CompressedSize: e.CompressedSize, CRC32: fmt.Sprintf("%08x", e.CRC32), Modified: e.Modified.UTC()})
	}
	if checkErr != nil {
		out.Problem = checkErr.Error()
	}
	if err := c.result(out, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MODE\tSIZE\tCOMPRESSED\tMETHOD\tMODIFIED (UTC)\tNAME")
		for _, e := range out.Entries {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", e.Mode, e.Size, e.CompressedSize, e.Method, e.Modified.Format(time.DateTime), e.Name)
		}
		tw.Flush()
		ratio := 0.0
		if out.Bytes > 0 {
			ratio = 100 * float64(a.size) / float64(out.Bytes)
		}
		fmt.Fprintf(w, "%d entries, %d files, %s uncompressed in an archive of %s (%.0f %%), sha256 %s\n", len(out.Entries), out.Files, mib(out.Bytes), mib(a.size), ratio, a.sha256)
	}); err != nil {
		return err
	}
	if checkErr != nil {
		err := fmt.Errorf("session %q of %s would not restore: %w", session, store, checkErr)
		if c.json { // the document holds the problem
			return silentError{err}
		}
		return err
	}
	return nil
}
