#!/usr/bin/env bash
# One complete check on a GPU host that has no Rust (see ../shared/device/): compress corpus
# files on the GPU adapter and on the CPU twin, require byte-identical archives, decode each
# archive on the other backend, and print KB/s for both directions on both backends.
#
# On the build machine:  cargo build --release && ../shared/device/prepare.sh
# Then send .device and target/release/nngpu, and run on the GPU host:
#   bash .device/env.sh bash scripts/gpu-host-check.sh [LEVEL] [FILE...]
# Files default to .device/corpus/{alice29.txt,book1}; LEVEL defaults to 5.
set -uo pipefail

bin=${NNGPU_BIN:-target/release/nngpu}
level=${1:-5}
shift || true
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(.device/corpus/alice29.txt .device/corpus/book1)
work=$(mktemp -d)
status=0

run() { # backend direction input output
    local start end
    start=$(date +%s.%N)
    "$bin" "$2" -f -v --backend "$1" "$3" -o "$4" 2>"$work/log" || { cat "$work/log"; return 1; }
    end=$(date +%s.%N)
    grep -v XDG_RUNTIME_DIR "$work/log"
    awk -v s="$start" -v e="$end" -v n="$(stat -c %s "$5")" \
        'BEGIN { printf "    wall %.1f s, %.1f KB/s of original data\n", e - s, n / (e - s) / 1000 }'
}

for f in "${files[@]}"; do
    name=$(basename "$f")
    echo "== $name (level $level)"
    run gpu compress "$f" "$work/$name.gpu.nng" "$f" || status=1
    run cpu compress "$f" "$work/$name.cpu.nng" "$f" || status=1
    if cmp -s "$work/$name.gpu.nng" "$work/$name.cpu.nng"; then
        echo "    archives byte-identical"
    else
        echo "    ARCHIVES DIFFER"; status=1
    fi
    run gpu decompress "$work/$name.cpu.nng" "$work/$name.from-cpu" "$f" || status=1
    run cpu decompress "$work/$name.gpu.nng" "$work/$name.from-gpu" "$f" || status=1
    cmp -s "$f" "$work/$name.from-cpu" && cmp -s "$f" "$work/$name.from-gpu" \
        && echo "    each archive decodes on the other backend" \
        || { echo "    CROSS-DECODE FAILED"; status=1; }
done
rm -rf "$work"
exit $status
