#!/usr/bin/env bash
# Peak resident memory of compress and decompress through standard input and output (so the
# input's length is unknown to nngpu, as in a pipeline), measured by /usr/bin/time -v.
#   scripts/peak-memory.sh LEVEL FILE [FILE...]       (build with cargo build --release first)
# Prints one table row per file: bytes, archive bytes, bits/byte, peak RSS and seconds of each
# direction, and whether the round trip gave the input back.
set -euo pipefail
bin=${NNGPU_BIN:-target/release/nngpu}
level=$1; shift
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# Peak RSS in MiB and wall seconds of one command, from time -v's report in $work/t.
peak() { awk -F': ' '/Maximum resident/ { printf "%.1f", $2 / 1024 }' "$work/t"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
         for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.1f", s }' "$work/t"; }
printf '| level | input | bytes | archive | bits/byte | compress peak MiB | s | decompress peak MiB | s | round trip |\n'
printf '|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n'
for f in "$@"; do
    /usr/bin/time -v -o "$work/t" "$bin" -"$level" -q -c --backend cpu <"$f" >"$work/a.nng"
    cp_=$(peak); cs=$(wall)
    /usr/bin/time -v -o "$work/t" "$bin" -d -q -c --backend cpu <"$work/a.nng" >"$work/out"
    dp=$(peak); ds=$(wall)
    n=$(stat -c %s "$f"); a=$(stat -c %s "$work/a.nng")
    ok=$(cmp -s "$f" "$work/out" && echo yes || echo NO)
    printf '| %s | %s | %s | %s | %.4f | %s | %s | %s | %s | %s |\n' "$level" "$(basename "$f")" "$n" "$a" \
        "$(awk -v a="$a" -v n="$n" 'BEGIN { print a * 8 / n }')" "$cp_" "$cs" "$dp" "$ds" "$ok"
done
