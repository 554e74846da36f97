// Command genprofile writes a synthetic Chromium/WhatsApp Web profile (internal/profilegen) for
// compat/wwebjs/bench.sh: the same tree that remoteauth's benchmarks generate for the same size and
// seed, so that RemoteAuth, wwebstore and zip are measured on identical data.
//
//	go run ./compat/wwebjs/genprofile -size 1073741824 -seed 1 -dir DATAPATH/RemoteAuth-bench
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/wwebstore/wwebstore/internal/profilegen"
)

func main() {
	size := flag.Int64("size", 1<<30, "total bytes of the profile")
	seed := flag.Int64("seed", 1, "seed of the tree")
	dir := flag.String("dir", "", "profile directory to create (missing or empty)")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	stats, err := profilegen.Generate(context.Background(), *dir, profilegen.Options{Size: *size, Seed: *seed})
	if err != nil {
		fmt.Fprintln(os.Stderr, "genprofile:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(stats); err != nil {
		fmt.Fprintln(os.Stderr, "genprofile:", err)
		os.Exit(1)
	}
}
