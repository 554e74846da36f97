// Package profilegen generates synthetic Chromium user-data directories of
// a profile logged into WhatsApp Web, deterministically and fast, for tests,
// benchmarks and the `wwebstore demo` command. It also mutates a generated
// profile the way a running browser does (Churn) and checks that every
// LevelDB database of a profile is complete (Check).
//
// # Tree layout
//
// Paths are relative to the profile directory. Files have mode 0600 and
// directories 0700, as Chromium makes them. Sizes below are for a 1 GiB
// profile; every part scales with Options.Size.
//
// Top level, small: "Local State" (JSON), "First Run" (empty), "Last
// Version", "Variations" (JSON), "CrashpadMetrics-active.pma" (1 MiB),
// "first_party_sets.db" (SQLite header) and its -journal.
//
// Default/, outside the kept dirs, about 57 % of the bytes in about 1,400
// files; backups exclude all of it:
//
//	Preferences, Secure Preferences                 JSON
//	History, Favicons, Web Data, Login Data,
//	Top Sites, Shortcuts (+ "-journal")             SQLite header, filler
//	Visited Links, Sessions/Session_*, Tabs_*
//	Network/Cookies (+ -journal)                    where Chromium ≥ 96 keeps cookies
//	Network/Network Persistent State, TransportSecurity
//	Session Storage/, Service Worker/Database/      LevelDB without tables
//	Cache/Cache_Data/        34 % of the caches     blockfile cache: index, data_0..3, f_000001…
//	Code Cache/js/           17 %                   simple cache: index, index-dir/the-real-index, <hash>_0
//	Code Cache/wasm/         10 %                   simple cache, entries up to 8 MiB
//	GPUCache/                 2 %                   blockfile cache
//	Service Worker/CacheStorage/<origin hash>/      30 %: index.txt and two simple caches in <uuid>/
//	Service Worker/ScriptCache/                      7 %: simple cache
//
// The kept dirs (see KeptDirs), exactly 43 % of the bytes in about 9,000
// files per GiB (the reference 1 GB profile kept 440 MiB in 8,969 files):
//
//	Default/Local Storage/leveldb/                  1.5 % of the kept bytes, at most 8 MiB:
//	    CURRENT ("MANIFEST-000001\n"), LOCK (empty), LOG (text),
//	    MANIFEST-000001, 000003.log, 1–3 tables (000005.ldb…)
//	Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/
//	    CURRENT, LOCK, LOG, MANIFEST-000001, 000003.log (up to 4 MiB),
//	    tables of 2–4 MiB (000005.ldb, 000007.ldb…): about 75 % of the kept bytes
//	Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.blob/
//	    <database>/<number>>8 & 0xff, %02x>/<number, %x> as Chromium names
//	    them ("1/00/1a", "1/01/10f"), 256 B to 64 KiB each, log-uniform
//	    (mean about 12 KiB), in databases 1 and 3: about 23 % of the kept bytes
//
// The MANIFEST files are real LevelDB manifests (log format, VersionEdit
// records with comparator "idb_cmp1" or "leveldb.BytewiseComparator") that
// list the table files with their sizes, so Check, or a LevelDB-aware
// backup, can tell a complete copy from one that lost a table. Table and
// .log files hold filler bytes, not real SSTables or write batches:
// Chromium cannot open the databases.
//
// # Content
//
// Structured files (JSON, LOG, CURRENT, MANIFEST) are small and written in
// full. Every other file is a short header, if any, followed by a body of
// alternating segments of 64 KiB (two halves when the body is shorter than
// 128 KiB), starting with a randomly chosen kind:
//
//   - incompressible segments are ChaCha8 output;
//   - compressible segments are windows, at random offsets, of an 8 MiB
//     corpus built once per process: LevelDB-style keys and V8-serialised
//     message objects, JSON documents and chat text with random IDs, phone
//     numbers, timestamps and base64 keys. deflate level 6 shrinks a 64 KiB
//     window to about 36 % of its size.
//
// So every file, small or big, is about half incompressible. deflate level 6
// of the kept dirs, file by file as zip does, gives about 70 % of their size
// (small blob halves compress worse than 64 KiB windows).
//
// # Determinism and speed
//
// The whole tree is planned first from the seed (paths, sizes, headers:
// about 1 MiB of memory per GiB of profile); each file's body then comes
// from its own ChaCha8 stream seeded by (Seed, file index), so files are
// written in parallel, in any order, with the same result. Memory use is a
// 256 KiB buffer per writer goroutine plus the corpus. On tmpfs a 1 GiB
// profile takes about 1 s on 2 cores; on a disk the cost of creating about
// 10,500 files usually dominates.
package profilegen
