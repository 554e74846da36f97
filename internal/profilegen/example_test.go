package profilegen_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/wwebstore/wwebstore/internal/profilegen"
)

func ExampleGenerate() {
	tmp, err := os.MkdirTemp("", "profilegen-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// A RemoteAuth profile directory: <dataPath>/RemoteAuth-<clientId>.
	dir := filepath.Join(tmp, ".wwebjs_auth", "RemoteAuth-demo")
	st, err := profilegen.Generate(context.Background(), dir, profilegen.Options{Size: 8 << 20, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bytes:", st.Bytes)
	fmt.Printf("kept: %.0f%% of the bytes under %q\n", 100*float64(st.KeptBytes)/float64(st.Bytes), profilegen.KeptDirs())
	fmt.Println("check:", profilegen.Check(dir))
	// Output:
	// bytes: 8388608
	// kept: 43% of the bytes under ["Default/IndexedDB" "Default/Local Storage"]
	// check: <nil>
}

func ExampleChurn() {
	dir, err := os.MkdirTemp("", "profilegen-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, err := profilegen.Generate(context.Background(), dir, profilegen.Options{Size: 4 << 20}); err != nil {
		log.Fatal(err)
	}

	// Ten LevelDB compactions, as a live browser makes them; a backup taken
	// meanwhile must still capture complete databases.
	if err := profilegen.Churn(dir, 1, 10); err != nil {
		log.Fatal(err)
	}
	current, _ := os.ReadFile(filepath.Join(dir, "Default", "Local Storage", "leveldb", "CURRENT"))
	fmt.Printf("CURRENT: %q, check: %v\n", current, profilegen.Check(dir))
	// Output:
	// CURRENT: "MANIFEST-000015\n", check: <nil>
}
