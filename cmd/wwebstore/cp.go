package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// errSourceStopped is what the source's Extract sees when the destination's Save stops reading.
var errSourceStopped = errors.New("the destination stopped reading")

// copiedSession is one session in cp's JSON document.
type copiedSession struct {
	Name    string  `json:"name"`
	Size    int64   `json:"size"`
	SHA256  string  `json:"sha256,omitempty"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// cpResult is the JSON document of cp.
type cpResult struct {
	From     string          `json:"from"`
	To       string          `json:"to"`
	Sessions []copiedSession `json:"sessions"`
}

func runCp(ctx context.Context, c *cli, args []string) error {
	fs := c.flags(`Copies sessions from one store to another (from a wwebjs-mongo deployment to S3, say), streamed,
without extracting them. Each copy is verified: the destination's archive is read back and its
SHA-256 compared with the source's. A session that exists in the destination is not replaced
unless --overwrite. With --all, every session of the source is copied (the source must be able
to list: see ls); a failed session does not stop the others, and the exit code is 1 if any failed.`,
		`wwebstore cp --from "mongodb://db.example.com/whatsapp" --to s3://my-bucket/sessions --all`)
	fromURL := c.storeFlag(fs, "from", "", "the source store")
	toURL := c.storeFlag(fs, "to", "", "the destination store")
	session := fs.String("session", "", "the session to copy, such as RemoteAuth-alice")
	all := fs.Bool("all", false, "copy every session of the source")
	overwrite := fs.Bool("overwrite", false, "replace sessions that exist in the destination")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	switch {
	case *all && *session != "":
		return usagef("give --session NAME or --all, not both")
	case !*all:
		if err := checkSession(*session); err != nil {
			return usagef("%v, or --all", err)
		}
	}
	from, err := c.resolveURL("from", *fromURL, "")
	if err != nil {
		return err
	}
	to, err := c.resolveURL("to", *toURL, "")
	if err != nil {
		return err
	}
	if from == to {
		return usagef("--from and --to are the same store: %s", c.storeName(from))
	}
	src, err := c.openStore(ctx, from)
	if err != nil {
		return err
	}
	dst, err := c.openStore(ctx, to)
	if err != nil {
		return err
	}
	var sessions []remoteauth.SessionInfo
	if *all {
		if sessions, err = c.list(ctx, src, from); err != nil {
			return err
		}
	} else {
		sessions = []remoteauth.SessionInfo{{Name: *session, Size: -1}}
	}

	out := cpResult{From: c.storeName(from), To: c.storeName(to), Sessions: []copiedSession{}}
	var firstErr error
	failed := 0
	for _, s := range sessions {
		res, err := c.copySession(ctx, src, dst, s, *overwrite)
		res.Name = s.Name
		if err != nil {
			err = fmt.Errorf("copy session %q from %s to %s: %w", s.Name, out.From, out.To, err)
			res.Error = err.Error()
			failed++
			if firstErr == nil {
				firstErr = err
			}
			if *all && !c.json {
				fmt.Fprintf(c.stderr, "wwebstore cp: %v\n", err)
			}
		}
		out.Sessions = append(out.Sessions, res)
	}
	if err := c.result(out, func(w io.Writer) {
		for _, s := range out.Sessions {
			if s.Error == "" {
				fmt.Fprintf(w, "copied %s (%s, sha256 %s) from %s to %s, verified, in %s\n", s.Name, mib(s.Size), s.SHA256[:16], out.From, out.To, time.Duration(s.Seconds*float64(time.Second)).Round(time.Millisecond))
			}
		}
		if *all {
			fmt.Fprintf(w, "%d of %d sessions copied\n", len(sessions)-failed, len(sessions))
		}
	}); err != nil {
		return err
	}
	switch {
	case failed == 0:
		return nil
	case *all: // each failure is printed already
		return silentError{fmt.Errorf("%d of %d sessions failed", failed, len(sessions))}
	case c.json: // the document holds the error
		return silentError{firstErr}
	}
	return firstErr
}

// copySession copies one session from src to dst, streamed through a pipe, then reads the
// destination's archive back and compares its SHA-256 with the source's.
func (c *cli) copySession(ctx context.Context, src, dst remoteauth.Store, s remoteauth.SessionInfo, overwrite bool) (copiedSession, error) {
	var res copiedSession
	start := time.Now()
	ok, err := src.SessionExists(ctx, s.Name)
	if err != nil {
		return res, fmt.Errorf("look it up in the source: %w", err)
	}
	if !ok {
		return res, fmt.Errorf("%w: the source has no such session (list its sessions with: wwebstore ls)", remoteauth.ErrNotFound)
	}
	if !overwrite {
		exists, err := dst.SessionExists(ctx, s.Name)
		if err != nil {
			return res, fmt.Errorf("look it up in the destination: %w", err)
		}
		if exists {
			return res, errors.New("the destination has this session already; pass --overwrite to replace it")
		}
	}

	p := c.startProgress("copy "+s.Name, s.Size)
	pr, pw := io.Pipe()
	h := sha256.New()
	var n countWriter
	extracted := make(chan error, 1)
	go func() {
		err := src.Extract(ctx, s.Name, io.MultiWriter(pw, h, &n, p.writer()))
		pw.CloseWithError(err) // nil: EOF
		extracted <- err
	}()
	saveErr := dst.Save(ctx, s.Name, pr)
	pr.CloseWithError(errSourceStopped) // unblocks the source if the destination quit early
	extractErr := <-extracted
	p.finish()
	switch {
	case extractErr != nil && !errors.Is(extractErr, errSourceStopped):
		return res, fmt.Errorf("reading the source: %w (the destination is unchanged)", extractErr)
	case saveErr != nil:
		return res, fmt.Errorf("saving to the destination: %w (the destination keeps its previous archive)", saveErr)
	case extractErr != nil:
		return res, fmt.Errorf("reading the source: %w", extractErr)
	}
	want := h.Sum(nil)

	back := sha256.New()
	var m countWriter
	if err := dst.Extract(ctx, s.Name, io.MultiWriter(back, &m)); err != nil {
		return res, fmt.Errorf("reading the copy back to verify it: %w", err)
	}
	if got := back.Sum(nil); m.n != n.n || string(got) != string(want) {
		return res, fmt.Errorf("verification failed: the destination holds %d bytes with SHA-256 %x, the source sent %d bytes with SHA-256 %x; copy again", m.n, got, n.n, want)
	}
	res.Size, res.SHA256, res.Seconds = n.n, hex.EncodeToString(want), time.Since(start).Seconds()
	return res, nil
}

// countWriter counts the bytes written to it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
