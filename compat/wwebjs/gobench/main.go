// Command gobench is wwebstore's side of compat/wwebjs/bench.sh, the counterpart of remoteauth.js:
// it generates the benchmark profile, and backs it up or restores it with a fresh
// remoteauth.Session whose store is a filestore, one operation per process.
//
//	gobench gen -size N -seed S -dir DIR
//	    writes a synthetic profile (internal/profilegen) to DIR, the same tree that remoteauth's
//	    benchmarks generate for the same size and seed; prints its profilegen.Stats as JSON.
//	gobench backup <dataPath> <clientId> <storeDir>
//	    backs up <dataPath>/RemoteAuth-<clientId> to a filestore at storeDir. A new Session has no
//	    saved fingerprint, so this is a first backup: the whole archive is made and saved.
//	gobench restore <dataPath> <clientId> <storeDir>
//	    restores the session's archive from the filestore at storeDir into dataPath, which must
//	    not exist yet.
//
// backup and restore print one JSON line, as remoteauth.js does:
//
//	{"op", "ms": the Backup or Restore call, "archiveBytes", "files", "bytes": what was archived
//	 or restored, "maxRSSMiB": the process's peak RSS, "peakHeapMiB": the peak growth of the live
//	 heap during the call, sampled every millisecond as remoteauth's benchmarks do (a close lower
//	 bound)}
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"syscall"
	"time"

	"github.com/wwebstore/wwebstore/internal/peakheap"
	"github.com/wwebstore/wwebstore/internal/profilegen"
	"github.com/wwebstore/wwebstore/remoteauth"
	filestore "github.com/wwebstore/wwebstore/stores/file"
)

const usage = `usage: gobench gen -size N -seed S -dir DIR
       gobench backup  <dataPath> <clientId> <storeDir>
       gobench restore <dataPath> <clientId> <storeDir>
`

// result is the JSON line printed by backup and restore.
type result struct {
	Op           string  `json:"op"`
	Ms           int64   `json:"ms"`
	ArchiveBytes int64   `json:"archiveBytes"`
	Files        int     `json:"files"`
	Bytes        int64   `json:"bytes"`
	MaxRSSMiB    float64 `json:"maxRSSMiB"`
	PeakHeapMiB  float64 `json:"peakHeapMiB"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var out any
	var err error
	switch op, args := os.Args[1], os.Args[2:]; op {
	case "gen":
		out, err = gen(args)
	case "backup", "restore":
		if len(args) != 3 {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		out, err = run(op, args[0], args[1], args[2])
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err == nil {
		err = json.NewEncoder(os.Stdout).Encode(out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
}

func gen(args []string) (profilegen.Stats, error) {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	size := fs.Int64("size", 1<<30, "total bytes of the profile")
	seed := fs.Int64("seed", 1, "seed of the tree")
	dir := fs.String("dir", "", "profile directory to create (missing or empty)")
	fs.Parse(args)
	if *dir == "" || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	return profilegen.Generate(context.Background(), *dir, profilegen.Options{Size: *size, Seed: *seed})
}

func run(op, dataPath, clientID, storeDir string) (result, error) {
	if op == "restore" {
		if _, err := os.Lstat(dataPath); !errors.Is(err, os.ErrNotExist) {
			return result{}, fmt.Errorf("restore: %s must not exist yet", dataPath)
		}
	}
	store, err := filestore.New(storeDir, nil)
	if err != nil {
		return result{}, err
	}
	s, err := remoteauth.NewSession(store, &remoteauth.Options{ClientID: clientID, DataPath: dataPath})
	if err != nil {
		return result{}, err
	}
	ctx := context.Background()
	r := result{Op: op}

	p := peakheap.Start()
	start := time.Now()
	if op == "backup" {
		var res remoteauth.BackupResult
		res, err = s.Backup(ctx)
		r.ArchiveBytes, r.Files, r.Bytes = res.ArchiveSize, res.Files, res.Bytes
	} else {
		var res remoteauth.RestoreResult
		res, err = s.Restore(ctx)
		r.ArchiveBytes, r.Files, r.Bytes = res.ArchiveSize, res.Files, res.Bytes
		if err == nil && !res.Found {
			err = fmt.Errorf("restore: no archive of the session in %s", storeDir)
		}
	}
	r.Ms = time.Since(start).Round(time.Millisecond).Milliseconds()
	r.PeakHeapMiB = mib(p.Stop())
	if err != nil {
		return result{}, err
	}

	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return result{}, err
	}
	r.MaxRSSMiB = mib(uint64(ru.Maxrss) * 1024) // KiB on Linux
	return r, nil
}

// mib converts bytes to MiB, rounded to 0.1 as remoteauth.js does.
func mib(b uint64) float64 {
	return math.Round(float64(b)/(1<<20)*10) / 10
}
