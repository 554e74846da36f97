#!/usr/bin/env bash
# compat/wwebjs/bench.sh: whatsapp-web.js RemoteAuth (run by node, remoteauth.js), wwebstore
# (remoteauth.Session, run by gobench) and zip/unzip on the same generated profile (gobench gen,
# SIZE bytes, seed 1: 1 GiB holds about 440 MiB in 9,000 kept files), RUNS times each; prints the
# medians of time, peak memory and archive size as a Markdown table, and how many times longer
# RemoteAuth takes than wwebstore.
#
# Usage: compat/wwebjs/bench.sh [WORKDIR]
#   WORKDIR   where the profile, archives, restores and raw results go (default: a new temporary
#             directory); a profile already at WORKDIR/data/RemoteAuth-bench is reused (whatever
#             SIZE it was generated with)
# Environment: RUNS (default 3), SIZE in bytes (default 1073741824).
#
# The runs are interleaved, so that the three tools see the same state of the machine (whose disk
# speed drifts over minutes): RUNS rounds of RemoteAuth backup, wwebstore backup, zip; then RUNS
# rounds of RemoteAuth restore, wwebstore restore, unzip. Every run starts after a sync, reads a
# warm page cache (the machine has far more memory than the profile), and each restore writes to a
# new directory (restore-ra-N, restore-ws-N, unzip-N); they are all removed only after the last
# restore, since deleting thousands of files slows file creation for seconds afterwards on this
# kind of disk.
#
# What is measured:
#   RemoteAuth backup   node remoteauth.js backup: storeRemoteSession() (fs cp to its temp dir,
#                       archiver zip, store.save copy); time until its promise resolved
#   RemoteAuth restore  node remoteauth.js restore: beforeBrowserInitialized() (store.extract copy,
#                       unzipper); time until every file was written (the event loop drained)
#   wwebstore backup    gobench backup: Session.Backup of a new Session to a filestore, a first
#                       backup (snapshot, zip, filestore Save, which fsyncs the archive and its
#                       directory); time of the Backup call
#   wwebstore restore   gobench restore: Session.Restore of a new Session into a new DataPath
#                       (fetch into a temporary file, check, extract, swap in); time of the call
#   zip / unzip         zip -6 -r -q of the kept dirs; unzip -q of that archive into a new dir
# Peak RSS is the whole process's: node's includes its ~55 MiB runtime, gobench's its Go runtime.
# Peak heap is wwebstore's only: the growth of gobench's live heap during the call, sampled every
# millisecond (a close lower bound).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
compat=$root/compat/wwebjs
runs=${RUNS:-3}
size=${SIZE:-1073741824}
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/wwebjs-bench.XXXXXX")}
mkdir -p "$work"
work=$(cd "$work" && pwd)
data=$work/data
profile=$data/RemoteAuth-bench
store=$work/store # wwebstore's filestore
results=$work/results.tsv # tool, operation, seconds, peak RSS MiB, peak heap MiB, archive MiB
: >"$results"

# --- tools --------------------------------------------------------------------------------------
missing=()
for cmd in zip unzip; do
	command -v "$cmd" >/dev/null || missing+=("$cmd")
done
[[ -x /usr/bin/time ]] || missing+=(time)
if [[ ${#missing[@]} -gt 0 ]]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ ! -d $compat/node_modules || $compat/package-lock.json -nt $compat/node_modules ]]; then
	(cd "$compat" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
	touch "$compat/node_modules"
fi
(cd "$root" && go build -o "$work/gobench" ./compat/wwebjs/gobench)

# --- the profile --------------------------------------------------------------------------------
if [[ ! -d $profile ]]; then
	echo "==> generating a $size-byte profile (seed 1) in $profile"
	"$work/gobench" gen -size "$size" -seed 1 -dir "$profile"
fi
kept=("Default/IndexedDB" "Default/Local Storage")
kept_files=$(cd "$profile" && find "${kept[@]}" -type f | wc -l)
echo "==> kept dirs: $kept_files files, $(cd "$profile" && du -cb "${kept[@]}" | tail -1 | cut -f1) bytes"
# Restores left by an interrupted earlier run.
rm -rf "$work"/restore-ra-* "$work"/restore-ws-* "$work"/unzip-*

# settle writes dirty pages back and lets the file system finish earlier deletes before a timed
# run (on ext4 mounted with discard they slow file creation for seconds); the Go benchmarks do the
# same (settle in remoteauth/bench_test.go).
settle() { sync; }

# json FIELD...: reads one JSON object on stdin and prints the FIELDs, separated by spaces.
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(process.argv.slice(1).map(f=>o[f]).join(" "))})' "$@"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
secs() { awk -v ms="$1" 'BEGIN { print ms / 1000 }'; }

# record TOOL OP MS RSS_MIB HEAP_MIB ARCHIVE_BYTES appends a line to $results.
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(secs "$3")" "$4" "$5" "$(mib "$6")" >>"$results"; }

# check_files TOOL FILES fails unless a restore wrote every kept file.
check_files() {
	if [[ $2 != "$kept_files" ]]; then
		echo "$1 restored $2 files, want $kept_files" >&2
		exit 1
	fi
}

# timed CMD...: runs CMD under /usr/bin/time and prints "milliseconds peak-RSS-MiB".
timed() {
	/usr/bin/time -f '%e %M' -o "$work/time.txt" "$@"
	awk '{ printf "%.0f %.1f\n", $1 * 1000, $2 / 1024 }' "$work/time.txt"
}

# --- backups ------------------------------------------------------------------------------------
for i in $(seq "$runs"); do
	echo "==> RemoteAuth backup $i/$runs"
	rm -f "$work/remoteauth.zip"
	settle
	out=$(node "$compat/remoteauth.js" backup "$data" bench "$work/remoteauth.zip")
	echo "$out"
	read -r ms rss archive < <(json ms maxRSSMiB archiveBytes <<<"$out")
	record RemoteAuth backup "$ms" "$rss" - "$archive"

	echo "==> wwebstore backup $i/$runs"
	rm -rf "$store"
	settle
	out=$("$work/gobench" backup "$data" bench "$store")
	echo "$out"
	read -r ms rss heap archive < <(json ms maxRSSMiB peakHeapMiB archiveBytes <<<"$out")
	record wwebstore backup "$ms" "$rss" "$heap" "$archive"

	echo "==> zip -6 -r -q $i/$runs"
	rm -f "$work/zip.zip"
	settle
	out=$(cd "$profile" && timed zip -6 -r -q "$work/zip.zip" "${kept[@]}")
	read -r ms rss <<<"$out"
	echo "$ms ms, $rss MiB"
	record zip/unzip backup "$ms" "$rss" - "$(stat -c %s "$work/zip.zip")"
done

# --- restores -----------------------------------------------------------------------------------
for i in $(seq "$runs"); do
	echo "==> RemoteAuth restore $i/$runs"
	settle
	out=$(node "$compat/remoteauth.js" restore "$work/restore-ra-$i" bench "$work/remoteauth.zip")
	echo "$out"
	read -r ms rss archive files < <(json doneMs maxRSSMiB archiveBytes files <<<"$out")
	check_files RemoteAuth "$files"
	record RemoteAuth restore "$ms" "$rss" - "$archive"

	echo "==> wwebstore restore $i/$runs"
	settle
	out=$("$work/gobench" restore "$work/restore-ws-$i" bench "$store")
	echo "$out"
	read -r ms rss heap archive files < <(json ms maxRSSMiB peakHeapMiB archiveBytes files <<<"$out")
	check_files wwebstore "$files"
	record wwebstore restore "$ms" "$rss" "$heap" "$archive"

	echo "==> unzip -q $i/$runs"
	settle
	out=$(timed unzip -q "$work/zip.zip" -d "$work/unzip-$i")
	read -r ms rss <<<"$out"
	echo "$ms ms, $rss MiB"
	record zip/unzip restore "$ms" "$rss" - "$(stat -c %s "$work/zip.zip")"
done
rm -rf "$work"/restore-ra-* "$work"/restore-ws-* "$work"/unzip-*

# --- medians ------------------------------------------------------------------------------------
# median TOOL OP COLUMN FORMAT: the median of a column of $results, or "-" if it holds "-".
median() {
	awk -F'\t' -v t="$1" -v o="$2" -v c="$3" '$1 == t && $2 == o { print $c }' "$results" | sort -g |
		awk -v f="$4" '{ v[NR] = $1 } END {
			if (NR == 0 || v[1] == "-") { print "-"; exit }
			printf f "\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}
echo
echo "Medians of $runs runs ($results):"
echo
echo "| tool | operation | time s | peak RSS MiB | peak heap MiB | archive MiB |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for tool in RemoteAuth wwebstore zip/unzip; do
	for op in backup restore; do
		echo "| $tool | $op | $(median "$tool" "$op" 3 %.2f) | $(median "$tool" "$op" 4 %.1f) |" \
			"$(median "$tool" "$op" 5 %.1f) | $(median "$tool" "$op" 6 %.1f) |"
	done
done
echo
ratio() { awk -v a="$(median RemoteAuth "$1" 3 %.6f)" -v b="$(median wwebstore "$1" 3 %.6f)" 'BEGIN { printf "%.1f", a / b }'; }
echo "RemoteAuth time / wwebstore time (medians): backup $(ratio backup)x, restore $(ratio restore)x"
echo
echo "The profile, the archives and the raw results are in $work; remove it when done."
