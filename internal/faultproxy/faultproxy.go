// Package faultproxy is a TCP proxy for fault tests: it forwards connections to a real server
// and can cut every connection at once, or refuse new ones, so that a test can make a server
// "go away" in the middle of a Save or an Extract and bring it back.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from Addr to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	refuse  bool
	written int64 // bytes forwarded towards the target
	onBytes func(total int64)
	wg      sync.WaitGroup
}

// Start listens on a free loopback port and forwards to target until the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the address clients dial instead of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every open connection, both ways. New connections are still accepted unless
// Refuse(true) was called.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Refuse makes the proxy close new connections at once (true), as a server that is down, or
// forward them again (false).
func (p *Proxy) Refuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
}

// CutAfter arranges for Cut and Refuse(true) to happen once n more bytes have been forwarded
// towards the target: the server goes away in the middle of a request.
func (p *Proxy) CutAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := p.written + n
	p.onBytes = func(total int64) {
		if total >= limit {
			p.onBytes = nil
			p.refuse = true
			for c := range p.conns {
				c.Close()
				delete(p.conns, c)
			}
		}
	}
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(s, c, true) })
		p.wg.Go(func() { p.pipe(c, s, false) })
	}
}

// pipe copies src to dst until either ends, then closes both.
func (p *Proxy) pipe(dst, src net.Conn, towardsTarget bool) {
	defer func() {
		dst.Close()
		src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if towardsTarget {
				p.mu.Lock()
				p.written += int64(n)
				if p.onBytes != nil {
					p.onBytes(p.written)
				}
				p.mu.Unlock()
			}
		}
		if err != nil { // io.EOF or a cut: either way this direction is over
			return
		}
	}
}

// TripWriter returns a writer that writes to w and calls trip once, when more than n bytes have
// been written to it: a fault test hands it to an Extract to cut the connection mid-stream.
func TripWriter(w io.Writer, n int64, trip func()) io.Writer {
	return &tripWriter{w: w, n: n, trip: trip}
}

type tripWriter struct {
	w    io.Writer
	n    int64
	trip func()
}

func (t *tripWriter) Write(p []byte) (int, error) {
	if t.trip != nil && int64(len(p)) > t.n {
		t.trip()
		t.trip = nil
	}
	t.n -= int64(len(p))
	return t.w.Write(p)
}
