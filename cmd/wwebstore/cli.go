package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Exit codes of the command.
const (
	exitOK       = 0 // the command did what it was asked
	exitFailure  = 1 // it failed: a store, the network, a bad archive, a refused confirmation
	exitUsage    = 2 // the command line is wrong: unknown command, flag or value, missing flag
	exitNotFound = 3 // the session (or a session to copy) does not exist in the store
)

// EnvStore is the environment variable that gives --store its default, so that a URL with
// credentials stays out of the command line (and out of ps and shell history).
const EnvStore = "WWEBSTORE_STORE"

// EnvProgressAfter overrides DefaultProgressAfter.
const EnvProgressAfter = "WWEBSTORE_PROGRESS_AFTER"

// env is what the command takes from its process. main fills it from the real process; tests
// give their own streams, environment and store opener.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// terminal is true when stdout and stderr are both terminals: progress bars are drawn.
	terminal bool
	// openStore opens a store URL: remoteauth.OpenStore.
	openStore func(ctx context.Context, rawURL string) (remoteauth.Store, error)
}

// cli is one run of one command: its streams (redacted), flags common to every command, and the
// stores it opened.
type cli struct {
	env            env
	name           string // the command's name, for messages
	stdout, stderr io.Writer
	redact         *redactor
	json           bool
	verbose        bool
	progressAfter  time.Duration
	log            *slog.Logger
	closers        []io.Closer
}

// usageError is a wrong command line: the command exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// silentError is the error of a command that has printed its outcome already: the process exits
// with the error's code, and nothing more is printed.
type silentError struct{ error }

func (e silentError) Unwrap() error { return e.error }

// errHelp reports that -h was given: the command printed its help and succeeds.
var errHelp = errors.New("help")

// flags returns the flag set of the command, with the flags every command has (--json, -v), and
// a usage message made of summary, example and the flags.
func (c *cli) flags(summary, example string) *flag.FlagSet {
	fs := flag.NewFlagSet("wwebstore "+c.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON document on stdout, for scripts")
	fs.BoolVar(&c.verbose, "v", false, "log what the engine and the stores do, on stderr")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: wwebstore %s [flags]\n\n%s\n\nExample:\n  %s\n\nFlags:\n", c.name, summary, example)
		fs.PrintDefaults()
		fmt.Fprintf(c.stderr, "\nExit codes: 0 ok, 1 failure, 2 usage, 3 session not found.\n")
	}
	return fs
}

// parse parses args into fs. Errors and help go to stderr; -h gives errHelp.
func (c *cli) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return &usageError{} // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %s (every value is given with a flag; see wwebstore %s -h)", strings.Join(fs.Args(), " "), c.name)
	}
	if c.verbose {
		c.log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		driverLog.Store(c.log)
	}
	return nil
}

// storeFlag defines a store URL flag: --name, defaulting to the environment variable envDefault
// when that is not empty.
func (c *cli) storeFlag(fs *flag.FlagSet, name, envDefault, what string) *string {
	help := what + `: file:///dir, redis://, rediss://, postgres://, postgresql://, mongodb://, mongodb+srv://, s3://, mem://; "env:NAME" reads the URL from the environment variable NAME`
	if envDefault != "" {
		help += " (default $" + envDefault + ")"
	}
	return fs.String(name, "", help)
}

// resolveURL returns the URL that a store flag names: its value, "env:NAME" read from the
// environment, or, when empty, the environment variable envDefault. It registers the URL's
// secrets with the redactor before anything can print them.
func (c *cli) resolveURL(flagName, value, envDefault string) (string, error) {
	if value == "" && envDefault != "" {
		value = c.env.getenv(envDefault)
	}
	if name, ok := strings.CutPrefix(value, "env:"); ok {
		value = c.env.getenv(name)
		if value == "" {
			return "", usagef("--%s env:%s: the environment variable %s is empty or not set", flagName, name, name)
		}
	}
	if value == "" {
		if envDefault != "" {
			return "", usagef("no store: give --%s URL or set %s", flagName, envDefault)
		}
		return "", usagef("no store: give --%s URL", flagName)
	}
	c.redact.addURL(value)
	return value, nil
}

// openStore opens the store at rawURL (resolved by resolveURL) and closes it when the command
// ends, if it is an io.Closer.
func (c *cli) openStore(ctx context.Context, rawURL string) (remoteauth.Store, error) {
	st, err := c.env.openStore(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("cannot open the store %s: %w (check the URL, the credentials and that the server is reachable)", c.redact.addURL(rawURL), err)
	}
	if cl, ok := st.(io.Closer); ok {
		c.closers = append(c.closers, cl)
	}
	return st, nil
}

// openStoreFlag opens the store that a command's --store flag names (value; by default the
// environment variable EnvStore), as resolveURL and openStore do, and returns it with its URL.
func (c *cli) openStoreFlag(ctx context.Context, value string) (remoteauth.Store, string, error) {
	rawURL, err := c.resolveURL("store", value, EnvStore)
	if err != nil {
		return nil, "", err
	}
	st, err := c.openStore(ctx, rawURL)
	if err != nil {
		return nil, "", err
	}
	return st, rawURL, nil
}

// sessionExists reports whether st has session; its error names the session and the store
// (storeName: the store's redacted URL).
func sessionExists(ctx context.Context, st remoteauth.Store, session, storeName string) (bool, error) {
	ok, err := st.SessionExists(ctx, session)
	if err != nil {
		return false, fmt.Errorf("look up session %q in %s: %w", session, storeName, err)
	}
	return ok, nil
}

// storeName is how messages name a store: its URL, redacted.
func (c *cli) storeName(rawURL string) string { return c.redact.addURL(rawURL) }

// close closes the stores the command opened.
func (c *cli) close() {
	for _, cl := range c.closers {
		if err := cl.Close(); err != nil {
			fmt.Fprintf(c.stderr, "wwebstore %s: %v\n", c.name, err)
		}
	}
}

// checkSession checks a --session value.
func checkSession(name string) error {
	if name == "" {
		return usagef("no session: give --session NAME (a store session name, such as RemoteAuth-alice)")
	}
	if err := remoteauth.ValidateSessionName(name); err != nil {
		return &usageError{err.Error()}
	}
	return nil
}

// result prints the command's result: v as one JSON document with --json, text otherwise.
func (c *cli) result(v any, text func(w io.Writer)) error {
	if !c.json {
		text(c.stdout)
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(append(b, '\n'))
	return err
}

// exitCode maps a command's error to the process's exit code.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, remoteauth.ErrNotFound):
		return exitNotFound
	}
	return exitFailure
}

// errorDoc is the JSON document of a failed command.
type errorDoc struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
}

// scheme returns the scheme of a store URL, for messages.
func scheme(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.Scheme != "" {
		return u.Scheme
	}
	return "the"
}
