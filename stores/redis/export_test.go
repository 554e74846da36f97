package redisstore

import "time"

// SetLease sets how long a Save's pending chunks and an Extract's lease live without a
// heartbeat (a minute by default), so that tests of expiry and heartbeats need not wait.
func SetLease(s *Store, d time.Duration) { s.lease = d }
