package main

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// DefaultProgressAfter is how long a transfer runs before its progress bar appears; the
// environment variable WWEBSTORE_PROGRESS_AFTER (a Go duration: 0, 500ms, 3s) changes it.
const DefaultProgressAfter = time.Second

// progressRefresh is how often a shown bar is redrawn.
const progressRefresh = 100 * time.Millisecond

// progress counts the bytes of one transfer and, when the command runs on a terminal, draws a
// progress bar on stderr once the transfer has run for the delay. Its Write counts bytes, so that
// it can sit in an io.MultiWriter or an io.TeeReader. A nil *progress counts nothing and draws
// nothing.
type progress struct {
	n    atomic.Int64
	stop chan struct{}
	done sync.WaitGroup
}

// startProgress starts counting a transfer described by desc, of total bytes (-1 if unknown).
// It returns nil when no bar would be drawn: stdout or stderr is not a terminal, or --json.
func (c *cli) startProgress(desc string, total int64) *progress {
	if !c.env.terminal || c.json {
		return nil
	}
	p := &progress{stop: make(chan struct{})}
	delay := c.progressAfter
	p.done.Go(func() {
		wait := time.NewTimer(delay)
		defer wait.Stop()
		select {
		case <-p.stop:
			return
		case <-wait.C:
		}
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(c.env.stderr), // the bar holds no URL: not redacted
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(progressRefresh),
			progressbar.OptionSetRenderBlankState(true),
		)
		tick := time.NewTicker(progressRefresh)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				bar.Set64(p.n.Load())
				bar.Finish()
				io.WriteString(c.env.stderr, "\n")
				return
			case <-tick.C:
				bar.Set64(p.n.Load())
			}
		}
	})
	return p
}

// Write counts len(b) bytes.
func (p *progress) Write(b []byte) (int, error) {
	if p != nil {
		p.n.Add(int64(len(b)))
	}
	return len(b), nil
}

// finish ends the transfer: a drawn bar is completed and left on its line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
}

// writer returns p as an io.Writer, or io.Discard for a nil p.
func (p *progress) writer() io.Writer {
	if p == nil {
		return io.Discard
	}
	return p
}
