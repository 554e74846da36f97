package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wwebstore/wwebstore/client"
	filestore "github.com/wwebstore/wwebstore/stores/file"
)

// A client that keeps its login in a store: the first run shows a QR code, later runs restore the
// session, even on a new disk.
func Example() {
	store, err := filestore.New("/var/lib/wwebstore", nil) // or redisstore.New, s3store.New, …
	if err != nil {
		log.Fatal(err)
	}
	c := client.New(client.Options{Auth: &client.RemoteAuth{Store: store, ClientID: "alice"}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range c.Events() {
			switch e := e.(type) {
			case client.QR:
				fmt.Println("scan this with WhatsApp:", e.Code)
			case client.Ready:
				fmt.Println("logged in")
			case client.RemoteSessionSaved:
				fmt.Printf("session saved: %d bytes in %v\n", e.ArchiveSize, e.Duration)
			case client.RemoteSessionSaveFailed:
				fmt.Println("backup failed, will retry:", e.Err)
			case client.Disconnected:
				fmt.Println("disconnected:", e.Reason)
			}
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := c.Initialize(ctx); err != nil {
		log.Fatal(err)
	}
	<-ctx.Done() // the program works until it is told to stop

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := c.Destroy(ctx); err != nil { // closes Chromium, then the final backup
		log.Print(err)
	}
	<-done
}

// Reading the page with a chromedp action, once the client is Ready.
func ExampleRun() {
	c := client.New(client.Options{})
	ctx := context.Background()
	if err := c.Initialize(ctx); err != nil {
		log.Fatal(err)
	}
	defer c.Destroy(ctx)
	title, err := client.Run(ctx, c, chromedp.Title())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(title)
}

// LegacySessionAuth's payload is the login to save; a later client injects it.
func ExampleLegacySessionAuth() {
	var saved client.LegacySession // read from where the previous run wrote it; nil the first time
	c := client.New(client.Options{Auth: &client.LegacySessionAuth{Session: saved, RestartOnAuthFail: true}})
	go func() {
		for e := range c.Events() {
			if a, ok := e.(client.Authenticated); ok {
				json.NewEncoder(os.Stdout).Encode(a.Payload) // write it where the next run reads it
			}
		}
	}()
	if err := c.Initialize(context.Background()); err != nil {
		log.Fatal(err)
	}
}
