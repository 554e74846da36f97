package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"
)

// buildCommand builds the command into a temporary directory and returns the binary's path.
func buildCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wwebstore")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestProgressBarOnTerminal runs the built command under a pseudo-terminal, as an operator would,
// and checks that a backup and a restore draw their progress bars; and that the same commands
// with their output in a pipe draw none. WWEBSTORE_PROGRESS_AFTER=0 shows the bars at once,
// whatever the speed of the machine.
func TestProgressBarOnTerminal(t *testing.T) {
	bin := buildCommand(t)
	store := "file://" + t.TempDir()
	profile, _ := newProfile(t, "alice", 1)
	restored := filepath.Join(t.TempDir(), "RemoteAuth-alice")
	environ := append(os.Environ(), EnvProgressAfter+"=0", "TERM=xterm")
	for _, tt := range []struct {
		args []string
		bar  string // the bar's description
		done string // the result line
	}{
		{[]string{"backup", "--store", store, "--dir", profile}, "backup RemoteAuth-alice", "backed up"},
		{[]string{"restore", "--store", store, "--session", "RemoteAuth-alice", "--dir", restored}, "restore RemoteAuth-alice", "restored session"},
	} {
		cmd := exec.Command(bin, tt.args...)
		cmd.Env = environ
		tty, err := pty.Start(cmd)
		if err != nil {
			t.Fatalf("starting under a pseudo-terminal: %v", err)
		}
		var out bytes.Buffer
		_, err = io.Copy(&out, tty)
		tty.Close()
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the terminal's other side closed
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("wwebstore %q under a terminal: %v\n%s", tt.args, err, out.String())
		}
		got := out.String()
		if !strings.Contains(got, tt.bar) || !strings.Contains(got, " MB") || !strings.Contains(got, tt.done) {
			t.Errorf("wwebstore %q under a terminal: no progress bar %q with a byte count, or no result %q:\n%q", tt.args, tt.bar, tt.done, got)
		}

		piped := exec.Command(bin, tt.args...)
		piped.Env = environ
		b, err := piped.CombinedOutput()
		if err != nil {
			t.Fatalf("wwebstore %q: %v\n%s", tt.args, err, b)
		}
		if strings.Contains(string(b), tt.bar) || !strings.Contains(string(b), tt.done) {
			t.Errorf("wwebstore %q with its output in a pipe drew a progress bar, or printed no result:\n%q", tt.args, b)
		}
	}
}
