// Package peakheap measures how far the live heap grows during an operation, for the benchmarks
// of this repository (remoteauth's and compat/wwebjs/gobench).
package peakheap

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Sampler samples the heap every millisecond from Start to Stop. Allocations and frees between
// two samples can be missed, so its figure is a close lower bound of the peak, not an exact one.
type Sampler struct {
	base, peak uint64
	done       chan struct{}
	wg         sync.WaitGroup
}

// Start runs a GC, takes the heap it leaves as the base, and starts sampling.
func Start() *Sampler {
	runtime.GC()
	s := &Sampler{base: heapNow(), done: make(chan struct{})}
	s.peak = s.base
	s.wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.peak = max(s.peak, heapNow())
			}
		}
	})
	return s
}

// Stop stops sampling and returns the highest sample above the base, in bytes.
func (s *Sampler) Stop() uint64 {
	close(s.done)
	s.wg.Wait()
	s.peak = max(s.peak, heapNow())
	return s.peak - s.base
}
