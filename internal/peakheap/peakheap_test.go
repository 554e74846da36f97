package peakheap

import "testing"

var sink []byte

func TestStopSeesAnAllocation(t *testing.T) {
	s := Start()
	sink = make([]byte, 32<<20)
	for i := range sink {
		sink[i] = 1
	}
	got := s.Stop()
	if got < 32<<20 {
		t.Errorf("Stop() = %d bytes while 32 MiB were live", got)
	}
	sink = nil
}
