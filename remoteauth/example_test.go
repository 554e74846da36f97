package remoteauth_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/wwebstore/wwebstore/remoteauth"
	"github.com/wwebstore/wwebstore/stores/file"
)

// A program that drives Chromium (chromedp, rod, or the client package) keeps its login across
// restarts: restore before the browser starts, run periodic backups once logged in, take a final
// backup on shutdown.
func ExampleSession() {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "wwebstore-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	store, err := filestore.New(filepath.Join(work, "sessions"), nil)
	if err != nil {
		log.Fatal(err)
	}
	s, err := remoteauth.NewSession(store, &remoteauth.Options{
		ClientID: "alice",
		DataPath: filepath.Join(work, ".wwebjs_auth"),
		OnBackup: func(r remoteauth.BackupResult) {
			if r.Err != nil {
				log.Print(r.Err) // already retried; the previous archive is kept
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Before the browser starts: bring the profile back, if the store has it.
	res, err := s.Restore(ctx)
	if err != nil {
		log.Fatal(err) // the local profile is as it was
	}
	fmt.Println("restored:", res.Found)
	fmt.Println("user-data-dir:", filepath.Base(s.ProfileDir()))

	// Here the browser starts with --user-data-dir=s.ProfileDir() and logs in; this example
	// writes a file where Chromium keeps IndexedDB instead.
	idb := filepath.Join(s.ProfileDir(), "Default", "IndexedDB")
	os.MkdirAll(idb, 0o700)
	os.WriteFile(filepath.Join(idb, "000003.log"), []byte("login"), 0o600)

	// Once logged in, back up now and every BackupInterval until ctx ends or Close:
	//	go s.Run(ctx)

	// On SIGTERM, after the browser has closed: a final backup within the platform's grace time.
	closeCtx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	if err := s.Close(closeCtx); err != nil {
		log.Fatal(err)
	}
	ok, _ := store.SessionExists(ctx, s.Name())
	fmt.Println("saved:", ok)
	// Output:
	// restored: false
	// user-data-dir: RemoteAuth-alice
	// saved: true
}

func ExampleOpenStore() {
	// Importing a store package registers its URL scheme.
	store, err := remoteauth.OpenStore(context.Background(), "mem://")
	if err != nil {
		log.Fatal(err)
	}
	ok, err := store.SessionExists(context.Background(), "RemoteAuth-alice")
	fmt.Println(ok, err)
	// Output: false <nil>
}

func ExampleSessionName() {
	name, _ := remoteauth.SessionName("alice")
	fmt.Println(name)
	_, err := remoteauth.SessionName("alice/bob")
	fmt.Println(err)
	// Output:
	// RemoteAuth-alice
	// remoteauth: invalid session name: clientId "alice/bob": only alphanumeric characters, underscores and hyphens are allowed
}
