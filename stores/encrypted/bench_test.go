package encryptedstore_test

import (
	"io"
	"testing"

	"filippo.io/age"

	"github.com/wwebstore/wwebstore/internal/peakheap"
	"github.com/wwebstore/wwebstore/remoteauth"
	encryptedstore "github.com/wwebstore/wwebstore/stores/encrypted"
)

// BenchmarkSaveExtract measures a 64 MiB archive saved and extracted through the wrapper, over
// filestore and without it, with the live heap's growth (peak-heap-MiB, which includes garbage
// not yet collected).
func BenchmarkSaveExtract(b *testing.B) {
	const size = 64 << 20
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		wrap func(remoteauth.Store) remoteauth.Store
	}{
		{"plain", func(st remoteauth.Store) remoteauth.Store { return st }},
		{"encrypted", func(st remoteauth.Store) remoteauth.Store {
			return newStore(b, st, &encryptedstore.Options{Identities: []age.Identity{id}})
		}},
	} {
		st := bc.wrap(newFileStore(b))
		for _, op := range []string{"Save", "Extract"} {
			b.Run(bc.name+"/"+op, func(b *testing.B) {
				ctx := b.Context()
				if op == "Extract" {
					if err := st.Save(ctx, "RemoteAuth-bench", io.LimitReader(zeros{}, size)); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(size)
				var peak uint64
				for b.Loop() {
					p := peakheap.Start()
					if op == "Save" {
						err = st.Save(ctx, "RemoteAuth-bench", io.LimitReader(zeros{}, size))
					} else {
						err = st.Extract(ctx, "RemoteAuth-bench", io.Discard)
					}
					peak = max(peak, p.Stop())
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			})
		}
	}
}
