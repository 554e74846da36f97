// Package reliability holds wwebstore's fault and load tests against the real stores; it has no
// API, only tests (in its _test.go files), and is a module of its own
// (github.com/wwebstore/wwebstore/internal/reliability) so that the four stores' drivers and
// testcontainers-go reach no other module.
//
// The tests, each run for the file store (where it applies) and for Redis, PostgreSQL, MongoDB
// and S3 (internal/testservers: containers, or servers named by WWEBSTORE_<X>_URL):
//
//   - TestCloseWithDeadline: Session.Close with a deadline, as on SIGTERM, takes the final backup.
//   - TestSIGKILLDuringBackup: a child process (this test binary, re-executed) backs up
//     deterministic profiles (internal/profilegen, state k = seed k) and is killed with SIGKILL at
//     random points of a backup, many times. After every kill the store holds the previous or the
//     new archive, whole: it passes remoteauth.InspectArchive and Verify, and a Session restores
//     it byte for byte into one of those two states. A last child restores and backs up normally.
//   - TestServerStopped: the server goes away (every connection cut and new ones refused, through
//     internal/faultproxy) in the middle of a Session's backup, and then of its restore: both fail
//     with an error, the store keeps the previous archive whole, the local profile is untouched
//     and no temporary file is left; once the server is back, the same store value restores and
//     backs up again. The stores' own fault_test.go files cover the store methods alone.
//   - TestDiskFullDuringRestore (Linux, root): the data directory is a small tmpfs; a restore
//     that does not fit fails with an error wrapping ENOSPC, the old profile stays byte for byte,
//     and the directory holds nothing else.
//   - TestLoad: 200 sessions (50 with -short) back up at once over one store value, then restore
//     at once, each byte for byte; the test logs sessions, bytes, wall times and errors.
//     BenchmarkLoad reports the same figures as metrics.
//
// See README.md for how to run them and the figures measured.
package reliability
