#!/usr/bin/env bash
# compat/wwebjs/bench.sh: whatsapp-web.js RemoteAuth (run by node, remoteauth.js), wwebstore (the
# remoteauth package's benchmarks) and zip/unzip, one after the other on the same generated
# profile (profilegen, SIZE bytes, seed 1: 1 GiB holds about 440 MiB in 9,000 kept files), RUNS
# times each; prints the medians of time, peak memory and archive size as a Markdown table.
#
# Usage: compat/wwebjs/bench.sh [WORKDIR]
#   WORKDIR   where the profile, archives, restores and raw results go (default: a new temporary
#             directory); a profile already at WORKDIR/data/RemoteAuth-bench is reused
# Environment: RUNS (default 3), SIZE in bytes (default 1073741824; the wwebstore benchmark
# always runs its 1GB case, so change SIZE for the RemoteAuth and zip rows only).
#
# What is measured:
#   RemoteAuth backup   node remoteauth.js backup: storeRemoteSession() (fs cp to its temp dir,
#                       archiver zip, store.save copy); time until its promise resolved
#   RemoteAuth restore  node remoteauth.js restore: beforeBrowserInitialized() (store.extract copy,
#                       unzipper); time until every file was written (the event loop drained)
#   wwebstore           go test -run '^$' -bench 'Backup$/1GB|Restore$/1GB' -benchtime 1x
#                       -count RUNS ./remoteauth/, run as its compiled test binary, once per
#                       benchmark, so that /usr/bin/time gives each its process's peak RSS
#   zip / unzip         zip -6 -r -q of the kept dirs; unzip -q of that archive
# Peak RSS is the whole process's (node's includes its ~55 MiB runtime; the Go test binary's
# includes generating the profile); wwebstore's peak heap is the benchmark's peak-heap-MiB. Every
# run reads a warm page cache (the machine has far more memory than the profile) and starts after
# a sync.
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

# --- the profile --------------------------------------------------------------------------------
if [[ ! -d $profile ]]; then
	echo "==> generating a $size-byte profile (seed 1) in $profile"
	(cd "$root" && go run ./compat/wwebjs/genprofile -size "$size" -seed 1 -dir "$profile")
fi
kept=("Default/IndexedDB" "Default/Local Storage")
echo "==> kept dirs: $(cd "$profile" && find "${kept[@]}" -type f | wc -l) files, $(cd "$profile" && du -cb "${kept[@]}" | tail -1 | cut -f1) bytes"

# settle writes dirty pages back and lets the file system finish earlier deletes before a timed
# run (on ext4 mounted with discard they slow file creation for seconds); the Go benchmarks do the
# same (settle in remoteauth/bench_test.go).
settle() { sync; }

# json FIELD: reads one JSON object on stdin and prints FIELD.
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[process.argv[1]]))' "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# --- RemoteAuth ---------------------------------------------------------------------------------
for i in $(seq "$runs"); do
	echo "==> RemoteAuth backup $i/$runs"
	settle
	out=$(node "$compat/remoteauth.js" backup "$data" bench "$work/remoteauth.zip")
	echo "$out"
	printf 'RemoteAuth\tbackup\t%s\t%s\t-\t%s\n' "$(awk -v ms="$(json ms <<<"$out")" 'BEGIN { print ms / 1000 }')" \
		"$(json maxRSSMiB <<<"$out")" "$(mib "$(json archiveBytes <<<"$out")")" >>"$results"
done
for i in $(seq "$runs"); do
	echo "==> RemoteAuth restore $i/$runs"
	rm -rf "$work/restore"
	settle
	out=$(node "$compat/remoteauth.js" restore "$work/restore" bench "$work/remoteauth.zip")
	echo "$out"
	printf 'RemoteAuth\trestore\t%s\t%s\t-\t%s\n' "$(awk -v ms="$(json doneMs <<<"$out")" 'BEGIN { print ms / 1000 }')" \
		"$(json maxRSSMiB <<<"$out")" "$(mib "$(json archiveBytes <<<"$out")")" >>"$results"
done
rm -rf "$work/restore"

# --- wwebstore ----------------------------------------------------------------------------------
(cd "$root" && go test -c -o "$work/remoteauth.test" ./remoteauth/)
mkdir -p "$work/tmp"
for op in Backup Restore; do
	echo "==> wwebstore $op ($runs runs): go test -run '^\$' -bench '$op\$/1GB' -benchtime 1x -count $runs ./remoteauth/"
	(cd "$root/remoteauth" && TMPDIR=$work/tmp /usr/bin/time -f 'maxrss_kib %M' -o "$work/time.txt" \
		"$work/remoteauth.test" -test.run '^$' -test.bench "$op\$/1GB" -test.benchtime 1x -test.count "$runs") | tee "$work/go-$op.txt"
	rss=$(awk '/^maxrss_kib/ { printf "%.1f", $2 / 1024 }' "$work/time.txt")
	# BenchmarkBackup/1GB-2  1  6012345678 ns/op  73.2 MB/s  310.2 archive-MiB  20.1 peak-heap-MiB  9007 files
	awk -v op="${op,,}" -v rss="$rss" -v sizes="$work/go-archive-MiB" '/^Benchmark/ {
		for (i = 2; i <= NF; i++) {
			if ($i == "ns/op") s = $(i - 1) / 1e9
			if ($i == "archive-MiB") a = $(i - 1)
			if ($i == "peak-heap-MiB") h = $(i - 1)
		}
		if (a == "") { getline a < sizes }
		printf "wwebstore\t%s\t%s\t%s\t%s\t%s\n", op, s, rss, h, a
		if (op == "backup") print a > sizes
		a = ""
	}' "$work/go-$op.txt" >>"$results"
done
rm -rf "$work/tmp"

# --- zip / unzip --------------------------------------------------------------------------------
for i in $(seq "$runs"); do
	echo "==> zip -6 -r -q $i/$runs"
	rm -f "$work/zip.zip"
	settle
	(cd "$profile" && /usr/bin/time -f '%e %M' -o "$work/time.txt" zip -6 -r -q "$work/zip.zip" "${kept[@]}")
	read -r secs kib <"$work/time.txt"
	printf 'zip/unzip\tbackup\t%s\t%s\t-\t%s\n' "$secs" "$(mib $((kib * 1024)))" "$(mib "$(stat -c %s "$work/zip.zip")")" >>"$results"
done
for i in $(seq "$runs"); do
	echo "==> unzip -q $i/$runs"
	rm -rf "$work/unzip"
	settle
	/usr/bin/time -f '%e %M' -o "$work/time.txt" unzip -q "$work/zip.zip" -d "$work/unzip"
	read -r secs kib <"$work/time.txt"
	printf 'zip/unzip\trestore\t%s\t%s\t-\t%s\n' "$secs" "$(mib $((kib * 1024)))" "$(mib "$(stat -c %s "$work/zip.zip")")" >>"$results"
done
rm -rf "$work/unzip"

# --- medians ------------------------------------------------------------------------------------
# median FORMAT: the median of the numbers on stdin, or "-" if they are "-".
median() {
	sort -g | awk -v f="$1" '{ v[NR] = $1 } END {
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
		row="| $tool | $op"
		for col in 3 4 5 6; do
			fmt=%.1f
			if [[ $col == 3 ]]; then fmt=%.2f; fi
			row+=" | $(awk -F'\t' -v t="$tool" -v o="$op" -v c="$col" '$1 == t && $2 == o { print $c }' "$results" | median "$fmt")"
		done
		echo "$row |"
	done
done
echo
echo "The profile, the archives and the raw results are in $work; remove it when done."
