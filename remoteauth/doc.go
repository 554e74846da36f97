// Package remoteauth keeps a browser login alive across restarts on hosts whose disk is wiped
// (Heroku-style dynos, containers, serverless): it archives the session data of a Chromium
// profile, backs it up to a Store (a file directory, MongoDB, Redis, S3, PostgreSQL, …) while the
// browser runs, and restores it before the browser starts. It is the Go counterpart of
// whatsapp-web.js RemoteAuth, and reads and writes the same archives.
//
// # Lifecycle
//
// A Session manages one profile directory, <DataPath>/RemoteAuth-<clientId>:
//
//	s, err := remoteauth.NewSession(store, &remoteauth.Options{ClientID: "alice"})
//	_, err = s.Restore(ctx)    // before the browser starts
//	// start Chromium with --user-data-dir=s.ProfileDir(), log in
//	go s.Run(ctx)              // once logged in: a backup now, then every BackupInterval
//	// on SIGTERM: close the browser, then
//	err = s.Close(ctxWithDeadline) // a final backup within the deadline
//	// on an explicit logout only:
//	err = s.Delete(ctx)        // removes the remote archive and the local profile
//
// # What it promises
//
//   - Restore never destroys a good local profile: the archive is fetched into a temporary file,
//     checked whole (safe names, ExtractLimits, every CRC), extracted beside the profile and
//     only then swapped in. A store error or a bad archive leaves the profile as it was; without a
//     remote archive the local profile is kept.
//   - With a store that keeps previous archives (the optional History capability: every store of
//     this repository keeps the last DefaultKeep, 2, by default, and encryptedstore does when the
//     store it wraps does), a newest archive that fails
//     verification is skipped for the previous one: Restore says so in RestoreResult (FellBack,
//     Skipped) and in a warning. A store error is not a reason to fall back; it fails the restore.
//   - A backup streams the archive into Store.Save as it is made: no zip file on disk, no copy of
//     the profile, memory independent of the profile's size. An unchanged profile (same names,
//     sizes, times and modes of every file) uploads nothing.
//   - A snapshot is consistent even while Chromium writes: files that change while they are read
//     are read again, and if files appear or vanish during the walk (a LevelDB compaction, which
//     would pair a MANIFEST with the wrong tables) the upload is abandoned, so the store keeps its
//     previous archive, and the snapshot taken again (ErrProfileChanged after
//     Options.SnapshotAttempts).
//   - Backups never overlap. A save the store refuses is retried with backoff (Options.Retry),
//     reported to Options.OnBackup and the logger, and never deletes anything. Only Delete
//     deletes a remote archive.
//   - One live owner per session: with a store that grants leases (the optional Leaser
//     capability: every store of this repository does, and encryptedstore over them), a
//     Session takes the session's lease before it first touches the store, renews it while it
//     lives, saves every backup under it and releases it after Close's final backup. A second
//     instance (a rolling deploy) waits for the first to hand over, then restores its final
//     backup, or fails with ErrLeaseHeld naming
//     the holder; an instance whose lease was taken over stops writing (ErrLeaseLost), and the
//     store's fencing refuses a save made under a superseded lease, so a stale instance never
//     overwrites a newer archive. See LeaseOptions; Lease.Disabled turns it off.
//
// # Archive format
//
// A zip archive whose entries are the files and directories under Options.KeptDirs (by default
// "Default/IndexedDB" and "Default/Local Storage"), named relative to the profile directory with
// '/' separators ("Default/IndexedDB/…"), as RemoteAuth makes them, with their Unix modes and
// modification times. Each file is deflated (Options.Compression) or, when deflate does not
// shrink it, stored. Every entry carries its CRC and sizes in its local header and has no data
// descriptor: the streaming unzipper used by whatsapp-web.js cuts short descriptor-mode entries
// whose data holds the descriptor's signature, and a wwebstore archive must restore there too.
// Symlinks and other special files are left out; files of 4 GiB or more cannot be archived.
//
// # Defaults and limits
//
//	DataPath          "./.wwebjs_auth"                 (DefaultDataPath)
//	BackupInterval    5 minutes, at least 1 minute     (DefaultBackupInterval, MinBackupInterval)
//	KeptDirs          Default/IndexedDB, Default/Local Storage (DefaultKeptDirs)
//	Compression       deflate level 5                  (DefaultCompression)
//	Retry             5 attempts, 1 s doubling to 30 s, ±20 % jitter
//	SnapshotAttempts  5                                (DefaultSnapshotAttempts)
//	Limits            4 GiB archive, 100,000 entries, 2 GiB per file, 8 GiB in all (DefaultExtractLimits)
//	Lease             on with a Leaser store; TTL 30 s, at least 3 s, renewed every TTL/3
//	                  (DefaultLeaseTTL, MinLeaseTTL); Wait 2 minutes, polling every second
//	                  (DefaultLeaseWait, LeasePollInterval); Owner <hostname>/<pid>/<random>
//	session names     1–100 of A–Z a–z 0–9 - _         (ValidateSessionName, MaxSessionNameLen)
//
// # Stores
//
// A Store keeps archives by session name; see its doc comment for the contract, which package
// storetest checks. Store packages register URL schemes, so that OpenStore can open a store from
// configuration: "file:///var/lib/sessions" (package filestore, the embedded default), "mem://"
// (memstore), and the server-backed stores in their own modules.
//
// # Optional capabilities and wrapper stores
//
// Beyond Store, a store may implement Lister (list its sessions), History (keep previous
// archives) and Leaser (grant fenced leases). Callers find each by type assertion. A store that
// wraps another (package encryptedstore, say) cannot know its capabilities when it is compiled:
// they are those of the store it wraps. Such a wrapper implements every capability it can pass
// on, and, when the store it wraps lacks one, answers every call of that capability's methods
// with an error wrapping errors.ErrUnsupported (Go's standard sentinel), whatever the arguments,
// before touching anything. Callers treat that answer exactly as a failed type assertion:
//
//	infos, err := lister.List(ctx)
//	if errors.Is(err, errors.ErrUnsupported) { /* the store cannot list */ }
//
// Session does so (Restore reads the newest archive alone when History.Versions says
// ErrUnsupported; a Session takes no lease when Leaser.AcquireLease says it), as does package
// storetest, which skips a capability's group, and the wwebstore command. The rule keeps one
// wrapper type whatever it wraps (New returns *encryptedstore.Store, not an interface chosen at
// run time), and it nests: a wrapper of a wrapper passes ErrUnsupported on. An unwrapping
// method (Unwrap() Store) would not do: a caller that unwrapped an encrypting store to lease or
// list through the inner one would bypass the encryption.
package remoteauth
