package encryptedstore_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"strings"

	"filippo.io/age"

	encryptedstore "github.com/wwebstore/wwebstore/stores/encrypted"
	memstore "github.com/wwebstore/wwebstore/stores/memory"
)

// A Store wraps any other store, and a remoteauth.Session uses it like any store. Here the key is made on the
// spot; in production it comes from age-keygen, through Options.Identities or the environment
// (NewFromEnv).
func Example() {
	ctx := context.Background()
	key, err := age.GenerateX25519Identity() // or age.ParseIdentities(keyFile)
	if err != nil {
		log.Fatal(err)
	}
	inner := memstore.New() // any store: redisstore, s3store, …
	st, err := encryptedstore.New(inner, &encryptedstore.Options{Identities: []age.Identity{key}})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Save(ctx, "RemoteAuth-alice", strings.NewReader("a zip archive")); err != nil {
		log.Fatal(err)
	}

	var stored bytes.Buffer // what the inner store holds
	if err := inner.Extract(ctx, "RemoteAuth-alice", &stored); err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.SplitN(stored.String(), "\n", 2)[0])

	var archive bytes.Buffer
	if err := st.Extract(ctx, "RemoteAuth-alice", &archive); err != nil {
		log.Fatal(err)
	}
	fmt.Println(archive.String())

	// A Session keeps its profile in the encrypted store like in any other:
	//	session, err := remoteauth.NewSession(st, &remoteauth.Options{ClientID: "alice"})
	// Output:
	// age-encryption.org/v1
	// a zip archive
}

// Key rotation: the new identity first, the old ones after it. New archives are written to the
// new key; archives written with an old key stay readable until their next backup rewrites them.
func ExampleNew_keyRotation() {
	ctx := context.Background()
	oldKey, _ := age.GenerateX25519Identity()
	newKey, _ := age.GenerateX25519Identity()
	inner := memstore.New()

	before, _ := encryptedstore.New(inner, &encryptedstore.Options{Identities: []age.Identity{oldKey}})
	before.Save(ctx, "RemoteAuth-alice", strings.NewReader("written with the old key"))

	after, err := encryptedstore.New(inner, &encryptedstore.Options{Identities: []age.Identity{newKey, oldKey}})
	if err != nil {
		log.Fatal(err)
	}
	var archive bytes.Buffer
	if err := after.Extract(ctx, "RemoteAuth-alice", &archive); err != nil {
		log.Fatal(err)
	}
	fmt.Println(archive.String())
	// Output: written with the old key
}
