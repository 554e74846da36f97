package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// errCannotList is returned for a store that does not implement remoteauth.Lister, or whose List
// says errors.ErrUnsupported (a wrapper store around one that cannot list).
var errCannotList = errors.New("the store cannot list its sessions")

// list lists the sessions of st, or returns an error that says what to do instead when st cannot
// list.
func (c *cli) list(ctx context.Context, st remoteauth.Store, rawURL string) ([]remoteauth.SessionInfo, error) {
	const instead = "ask for a session by name with: wwebstore exists --session NAME"
	l, ok := st.(remoteauth.Lister)
	if !ok {
		return nil, fmt.Errorf("%w: the %s store %s does not implement remoteauth.Lister; %s", errCannotList, scheme(rawURL), c.storeName(rawURL), instead)
	}
	list, err := l.List(ctx)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return nil, fmt.Errorf("%w: the %s store %s wraps a store that cannot list (%w); %s", errCannotList, scheme(rawURL), c.storeName(rawURL), err, instead)
	case err != nil:
		return nil, fmt.Errorf("list the sessions of %s: %w", c.storeName(rawURL), err)
	}
	return list, nil
}

// sessionDoc is one session in JSON output.
type sessionDoc struct {
	Name  string     `json:"name"`
	Size  int64      `json:"size"`
	Saved *time.Time `json:"saved,omitempty"`
}

// lsResult is the JSON document of ls.
type lsResult struct {
	Store    string       `json:"store"`
	Sessions []sessionDoc `json:"sessions"`
}

func runLs(ctx context.Context, c *cli, args []string) error {
	fs := c.flags(`Lists the sessions of a store, sorted by name, with the size of each archive and the time
it was saved (UTC; "-" where the store does not record it). Every store of this repository can
list; a store that cannot gets an error that says so.`,
		`wwebstore ls --store "mongodb://user:pass@db.example.com/whatsapp"`)
	storeURL := c.storeFlag(fs, "store", EnvStore, "the store")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	st, rawURL, err := c.openStoreFlag(ctx, *storeURL)
	if err != nil {
		return err
	}
	list, err := c.list(ctx, st, rawURL)
	if err != nil {
		return err
	}
	out := lsResult{Store: c.storeName(rawURL), Sessions: make([]sessionDoc, 0, len(list))}
	for _, s := range list {
		d := sessionDoc{Name: s.Name, Size: s.Size}
		if !s.Saved.IsZero() {
			t := s.Saved.UTC()
			d.Saved = &t
		}
		out.Sessions = append(out.Sessions, d)
	}
	return c.result(out, func(w io.Writer) {
		if len(list) == 0 {
			fmt.Fprintf(w, "%s holds no session\n", out.Store)
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "SIZE\tSAVED (UTC)\tSESSION\t")
		var total int64
		for _, s := range list {
			saved := "-"
			if !s.Saved.IsZero() {
				saved = s.Saved.UTC().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t\n", mib(s.Size), saved, s.Name)
			total += s.Size
		}
		tw.Flush()
		fmt.Fprintf(w, "%s, %s\n", plural(len(list), "session"), mib(total))
	})
}

// plural returns "1 session" or "n sessions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// existsResult is the JSON document of exists.
type existsResult struct {
	Store   string `json:"store"`
	Session string `json:"session"`
	Exists  bool   `json:"exists"`
}

func runExists(ctx context.Context, c *cli, args []string) error {
	fs := c.flags(`Tells whether a store has a session: prints "yes" and exits with 0, or prints "no" and exits
with 3. Any failure to find out (a store that cannot be reached) exits with 1, never 3.`,
		`wwebstore exists --store env:REDIS_URL --session RemoteAuth-alice && echo "alice can start"`)
	storeURL := c.storeFlag(fs, "store", EnvStore, "the store")
	session := fs.String("session", "", "the session name, such as RemoteAuth-alice (required)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if err := checkSession(*session); err != nil {
		return err
	}
	st, rawURL, err := c.openStoreFlag(ctx, *storeURL)
	if err != nil {
		return err
	}
	ok, err := sessionExists(ctx, st, *session, c.storeName(rawURL))
	if err != nil {
		return err
	}
	out := existsResult{Store: c.storeName(rawURL), Session: *session, Exists: ok}
	if err := c.result(out, func(w io.Writer) {
		if ok {
			fmt.Fprintln(w, "yes")
		} else {
			fmt.Fprintln(w, "no")
		}
	}); err != nil {
		return err
	}
	if !ok {
		return silentError{remoteauth.ErrNotFound}
	}
	return nil
}

// rmResult is the JSON document of rm.
type rmResult struct {
	Store   string `json:"store"`
	Session string `json:"session"`
	Deleted bool   `json:"deleted"`
}

func runRm(ctx context.Context, c *cli, args []string) error {
	fs := c.flags(`Deletes a session's archive from a store, for good: a browser restored from that store then
needs a new login (a QR code). It asks for confirmation on stdin first, unless --yes. A session
that does not exist exits with 3.`,
		`wwebstore rm --store file:///var/lib/wwebstore --session RemoteAuth-old --yes`)
	storeURL := c.storeFlag(fs, "store", EnvStore, "the store")
	session := fs.String("session", "", "the session name, such as RemoteAuth-alice (required)")
	yes := fs.Bool("yes", false, "delete without asking")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if err := checkSession(*session); err != nil {
		return err
	}
	st, rawURL, err := c.openStoreFlag(ctx, *storeURL)
	if err != nil {
		return err
	}
	name := c.storeName(rawURL)
	ok, err := sessionExists(ctx, st, *session, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s has no session %q (list its sessions with: wwebstore ls); nothing deleted", remoteauth.ErrNotFound, name, *session)
	}
	if !*yes {
		fmt.Fprintf(c.stderr, "Delete session %s from %s? It cannot be undone. [y/N] ", *session, name)
		answer, _ := bufio.NewReader(c.env.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return fmt.Errorf("not confirmed: session %q of %s is not deleted (answer y, or pass --yes)", *session, name)
		}
	}
	if err := st.Delete(ctx, *session); err != nil {
		return fmt.Errorf("delete session %q from %s: %w", *session, name, err)
	}
	out := rmResult{Store: name, Session: *session, Deleted: true}
	return c.result(out, func(w io.Writer) { fmt.Fprintf(w, "deleted session %s from %s\n", *session, name) })
}
