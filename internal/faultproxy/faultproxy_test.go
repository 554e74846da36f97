package faultproxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer echoes each line back until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, line string) (string, error) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

func TestForwardCutRefuse(t *testing.T) {
	p := Start(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(t, c, "hello"); err != nil || got != "hello" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	p.Cut()
	if _, err := roundTrip(t, c, "again"); err == nil {
		t.Fatal("a cut connection still works")
	}
	p.Refuse(true)
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		if _, err := roundTrip(t, c2, "x"); err == nil {
			t.Fatal("a refused connection works")
		}
	}
	p.Refuse(false)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(t, c3, "back"); err != nil || got != "back" {
		t.Fatalf("after Refuse(false): %q, %v", got, err)
	}
}

func TestCutAfter(t *testing.T) {
	p := Start(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p.CutAfter(10)
	if got, err := roundTrip(t, c, "12345"); err != nil || got != "12345" {
		t.Fatalf("before the limit: %q, %v", got, err)
	}
	if _, err := roundTrip(t, c, "0123456789"); err == nil {
		// The line crossing the limit may still be echoed; the next one cannot.
		if _, err := roundTrip(t, c, "more"); err == nil {
			t.Fatal("the connection survived CutAfter")
		}
	}
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		if _, err := roundTrip(t, c2, "x"); err == nil {
			t.Fatal("CutAfter did not refuse new connections")
		}
	}
}

func TestTripWriter(t *testing.T) {
	var buf strings.Builder
	trips := 0
	w := TripWriter(&buf, 5, func() { trips++ })
	io.WriteString(w, "12345") // exactly n bytes: no trip yet
	if trips != 0 {
		t.Fatalf("tripped after %d of 5 bytes", buf.Len())
	}
	io.WriteString(w, "6")
	io.WriteString(w, "7")
	if trips != 1 || buf.String() != "1234567" {
		t.Errorf("trips = %d, written %q; want 1 trip and every byte written", trips, buf.String())
	}
}
