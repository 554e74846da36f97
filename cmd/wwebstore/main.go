// Command wwebstore backs up, restores, inspects, moves and verifies browser sessions kept by
// package remoteauth, in any store: the tool an operator reaches for when a session misbehaves
// or moves.
//
// Usage:
//
//	wwebstore <command> [flags]
//
// Commands:
//
//	backup   back up a profile directory's session data to a store
//	restore  restore a session from a store into a profile directory, safely
//	ls       list the sessions of a store, with sizes and times
//	exists   tell whether a session exists (exit code 0 or 3)
//	rm       delete a session from a store (asks first, unless --yes)
//	cp       copy sessions between stores, verified byte for byte
//	verify   download a session's archive and check it whole, without extracting it
//	inspect  list the entries of a session's archive
//	bench    measure backup and restore against a store
//	demo     generate a profile, back it up to the embedded file store, wipe it, restore it and
//	         verify it byte for byte
//
// Run "wwebstore <command> -h" for a command's flags and an example. Stores are named by URL
// (file://, mem://, redis://, rediss://, postgres://, postgresql://, mongodb://, mongodb+srv://,
// s3://); --store defaults to $WWEBSTORE_STORE, and "env:NAME" reads a URL from the environment
// variable NAME. Credentials are never printed: URLs in output, errors and logs are redacted.
//
// Exit codes: 0 ok, 1 failure, 2 usage, 3 session not found. See README.md for the operator's
// guide.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/wwebstore/wwebstore/remoteauth"
	_ "github.com/wwebstore/wwebstore/stores/file"
	_ "github.com/wwebstore/wwebstore/stores/memory"
	_ "github.com/wwebstore/wwebstore/stores/mongo"
	_ "github.com/wwebstore/wwebstore/stores/postgres"
	_ "github.com/wwebstore/wwebstore/stores/redis"
	_ "github.com/wwebstore/wwebstore/stores/s3"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

var commands = []command{
	{"backup", "back up a profile directory's session data to a store", runBackup},
	{"restore", "restore a session from a store into a profile directory, safely", runRestore},
	{"ls", "list the sessions of a store, with sizes and times", runLs},
	{"exists", "tell whether a session exists (exit code 0 or 3)", runExists},
	{"rm", "delete a session from a store (asks first, unless --yes)", runRm},
	{"cp", "copy sessions between stores, verified byte for byte", runCp},
	{"verify", "download a session's archive and check it whole, without extracting it", runVerify},
	{"inspect", "list the entries of a session's archive: names, sizes, compression", runInspect},
	{"bench", "measure backup and restore against a store: throughput and peak memory", runBench},
	{"demo", "generate a profile, back it up to the embedded file store, wipe it, restore it and verify it", runDemo},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], env{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		getenv:    os.Getenv,
		terminal:  term.IsTerminal(int(os.Stdout.Fd())) && term.IsTerminal(int(os.Stderr.Fd())),
		openStore: remoteauth.OpenStore,
	}))
}

// run runs the command named by args[0] and returns the process's exit code: exitOK,
// exitFailure, exitUsage or exitNotFound.
func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name != args[0] {
			continue
		}
		r := newRedactor()
		c := &cli{
			env:           e,
			name:          cmd.name,
			stdout:        redactWriter{e.stdout, r},
			stderr:        redactWriter{e.stderr, r},
			redact:        r,
			progressAfter: DefaultProgressAfter,
		}
		err := c.init()
		if err == nil {
			err = cmd.run(ctx, c, args[1:])
		}
		c.close()
		code := exitCode(err)
		var silent silentError
		if code != exitOK && !errors.As(err, &silent) {
			if msg := err.Error(); msg != "" { // the flag package has printed its own errors
				fmt.Fprintf(c.stderr, "wwebstore %s: %s\n", cmd.name, msg)
			}
			if c.json && code != exitUsage {
				c.result(errorDoc{Error: err.Error(), ExitCode: code}, nil)
			}
		}
		return code
	}
	fmt.Fprintf(e.stderr, "wwebstore: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

// init reads the settings that come from the environment.
func (c *cli) init() error {
	c.log = slog.New(slog.DiscardHandler)
	driverLog.Store(c.log)
	if v := c.env.getenv(EnvProgressAfter); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return usagef("%s=%q is not a duration such as 0, 500ms or 2s", EnvProgressAfter, v)
		}
		c.progressAfter = d
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: wwebstore <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Stores are URLs: file:///dir, mem://, redis://, rediss://, postgres://, postgresql://,
mongodb://, mongodb+srv://, s3://bucket/prefix. --store defaults to $%s; "env:NAME" reads
a URL from the environment variable NAME (e.g. --store env:REDIS_URL). S3 credentials come from
the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, roles, ...). Secrets are never printed.

Exit codes: 0 ok, 1 failure, 2 usage, 3 session not found.
Run "wwebstore <command> -h" for a command's flags and an example.
`, EnvStore)
}
