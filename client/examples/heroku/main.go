package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wwebstore/wwebstore/client"
	_ "github.com/wwebstore/wwebstore/stores/redis" // redis:// and rediss:// store URLs
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	auth := &client.RemoteAuth{StoreURL: os.Getenv("STORE_URL"), ClientID: os.Getenv("CLIENT_ID")}
	c := client.New(client.Options{Auth: auth, URL: os.Getenv("WEB_APP_URL")}) // "": WhatsApp Web
	if err := c.Initialize(ctx); err != nil {                                  // logs the QR code to scan when no login is saved
		log.Fatal(err)
	}
	<-ctx.Done() // SIGTERM: the platform kills the process 30 s later
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := c.Destroy(ctx); err != nil { // closes Chromium, then takes the final backup
		log.Fatal(err)
	}
}
