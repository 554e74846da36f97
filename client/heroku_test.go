package client_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wwebstore/wwebstore/client/internal/fixture"
	"github.com/wwebstore/wwebstore/internal/testservers"
)

// The README's program, examples/heroku, must stay the file the README shows, and short.
func TestREADMEShowsTheHerokuExample(t *testing.T) {
	src, err := os.ReadFile("examples/heroku/main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(src)+"```\n") {
		t.Error("README.md does not show examples/heroku/main.go as it is: copy the file into its ```go block")
	}
	if n := strings.Count(string(src), "\n"); n >= 30 {
		t.Errorf("examples/heroku/main.go has %d lines; the README promises fewer than 30", n)
	}
}

// TestHerokuExample runs the README's program as a dyno would: it logs in with a QR code, gets
// SIGTERM, saves its session to Redis, loses its disk, starts again and is ready without a QR code.
func TestHerokuExample(t *testing.T) {
	needBrowser(t)
	bin := filepath.Join(t.TempDir(), "heroku")
	build := exec.Command("go", "build", "-o", bin, "./examples/heroku")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/heroku: %v\n%s", err, out)
	}
	srv := testservers.Redis(t)
	app := fixture.Start(t, nil)
	dyno := t.TempDir()

	first := startDyno(t, bin, dyno, srv.URL, app.URL)
	code := first.waitLine(t, regexp.MustCompile(`code=(\S+)`))
	if err := app.Scan(t.Context(), code, "alice"); err != nil {
		t.Fatal(err)
	}
	first.waitLine(t, regexp.MustCompile(`(ready): the web app is logged in`))
	first.stop(t)

	if err := os.RemoveAll(filepath.Join(dyno, ".wwebjs_auth")); err != nil { // a new dyno's disk
		t.Fatal(err)
	}
	second := startDyno(t, bin, dyno, srv.URL, app.URL)
	second.waitLine(t, regexp.MustCompile(`(ready): the web app is logged in`))
	second.stop(t)
	if strings.Contains(second.output(), "scan this QR code") {
		t.Errorf("the restarted program asked for a QR code:\n%s", second.output())
	}
}

type dyno struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	log   strings.Builder // written by the reader goroutine; read only after done is closed
}

func startDyno(t *testing.T, bin, dir, storeURL, appURL string) *dyno {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "STORE_URL="+storeURL, "CLIENT_ID=dyno-1", "WEB_APP_URL="+appURL)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &dyno{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			d.log.WriteString(s.Text() + "\n")
			select {
			case d.lines <- s.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return d
}

// waitLine returns the first group of re in the next line that matches.
func (d *dyno) waitLine(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case l := <-d.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		case <-d.done:
			t.Fatalf("the program ended without a line matching %s", re)
		case <-deadline:
			t.Fatalf("no line matching %s within %v", re, eventTimeout)
		}
	}
}

// stop sends SIGTERM, as the platform does, and waits for a clean exit.
func (d *dyno) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), eventTimeout)
	defer cancel()
	select {
	case <-d.done:
	case <-ctx.Done():
		t.Fatal("the program did not end after SIGTERM")
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the program ended with %v after SIGTERM:\n%s", err, d.output())
	}
}

// output returns what the program logged; call it after stop.
func (d *dyno) output() string {
	<-d.done
	return d.log.String()
}
