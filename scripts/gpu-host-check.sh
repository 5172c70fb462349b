#!/usr/bin/env bash
# One complete check on a GPU host that has no Rust (see ../shared/device/): for each case
# (level, streams, slice of a corpus file) compress on the GPU adapter and on the CPU twin,
# require byte-identical archives, decode each archive on the other backend, and print one
# table row of sizes, bits/byte and KB/s for both directions on both backends.
#
# On the build machine:  cargo build --release && ../shared/device/prepare.sh
# Then send .device and target/release/nngpu, and run on the GPU host:
#   bash .device/env.sh bash scripts/gpu-host-check.sh [CASE...]
# A host whose image lacks libglvnd (the NVIDIA Vulkan driver loads through it) reports no
# adapter: send Debian's libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 .debs
# along, unpack them there (`dpkg -x`, `ldconfig`) and point the loader at the driver with
# VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json (the H200 host needed both).
# A CASE is LEVEL:STREAMS:BYTES:FILE[:FLAGS] (BYTES 0 = the whole file; STREAMS "s" = the
# preset's stream schedule; FLAGS = more options, comma-separated, e.g. --frame-size=256K,-T4);
# FILE is .device/corpus/FILE, or .device/FILE.gz unpacked once (for inputs too large to send
# plain, such as the 40 MB text: on the build machine
#   bash ../shared/corpus/make-large.sh /tmp/large40.txt 40 && gzip -9c /tmp/large40.txt > .device/large40.txt.gz).
# Without CASEs: 5:s:200000:bible.txt and 5:64:100000:book1 (GPU = CPU checks at the default
# preset), then 5:s:0:large40.txt when .device/large40.txt.gz is there (the throughput figure
# the GPU issue asks for: the default preset, one frame, whose mixing stage codes each step's
# streams on up to 8 of the host's cores since format version 8). Five frames of 8 MB coded
# at once, each with its own GPU device, are the CASE 5:s:0:large40.txt:--frame-size=8M,-T8.
# Every command runs under `timeout` (NNGPU_CHECK_TIMEOUT seconds, default 90; GPU-only cases
# NNGPU_CHECK_LARGE_TIMEOUT, default 120), so one slow case cannot eat the host's time; a
# timed-out run is reported, not hidden.
# Cases larger than NNGPU_CHECK_CPU_MAX bytes (default 2000000; 0 for no limit) run on the GPU
# only: their archive is decoded on the GPU and compared with the input, the CPU columns read
# "-" (the GPU = CPU check belongs to the smaller cases, and the twin would take too long).
# A GPU-only case is also compared with the CPU twin's archive of the same case when
# scripts/gpu-host-reference.txt has one for this input and this format version (a line per
# case: CASE, the input's SHA-256, the format version, the archive's bytes and SHA-256). Write
# those lines on the build machine, where the twin has the time:
#   NNGPU_CHECK_WRITE_REFERENCE=1 bash scripts/gpu-host-check.sh 5:s:0:large40.txt
# (each CASE compressed with --backend cpu; its line replaces the case's old one; no table).
# After the table, the cases numbered in NNGPU_CHECK_PROFILE (default "1", the first; "" for
# none) are compressed and decoded once more on the GPU with NNGPU_GPU_PROFILE=1, which prints
# where the time went: per kernel, dispatches per step and GPU time (timestamp queries), and
# per step the time inside the backend split into GPU and host. These runs are not timed in
# the table: the timestamps cost a read-back per submit.
set -uo pipefail

bin=${NNGPU_BIN:-target/release/nngpu}
limit=${NNGPU_CHECK_TIMEOUT:-90}
large_limit=${NNGPU_CHECK_LARGE_TIMEOUT:-120}
cpu_max=${NNGPU_CHECK_CPU_MAX:-2000000}
profiled=${NNGPU_CHECK_PROFILE-1}
reference=${NNGPU_CHECK_REFERENCE:-scripts/gpu-host-reference.txt}
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=(5:s:200000:bible.txt 5:64:100000:book1)
    [ ! -f .device/large40.txt.gz ] || cases+=(5:s:0:large40.txt)
fi
work=$(mktemp -d)
mkdir -p "$work/files"
status=0

"$bin" --version
write_reference=${NNGPU_CHECK_WRITE_REFERENCE:-0}
if [ "$write_reference" != 1 ]; then
    # Which adapter the GPU backend opens (its name is in -v's summary line).
    head -c 1000 .device/corpus/book1 | timeout "$limit" "$bin" -1 -v --backend gpu -c >/dev/null 2>"$work/log"
    grep -o 'backend .*' "$work/log" || grep -v XDG_RUNTIME_DIR "$work/log"
fi
# Prints the seconds one run took, or "timeout"/"failed" (and its log) on stderr.
timed() { # backend mode input output
    local start end rc
    start=$(date +%s.%N)
    timeout "$case_limit" "$bin" "$2" -f --backend "$1" "${@:5}" "$3" -o "$4" 2>"$work/log"
    rc=$?
    end=$(date +%s.%N)
    if [ $rc -eq 124 ]; then echo "timeout"; return 1; fi
    if [ $rc -ne 0 ]; then grep -v XDG_RUNTIME_DIR "$work/log" >&2; echo "failed"; return 1; fi
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }'
}
kbs() { # bytes seconds
    case $2 in timeout|failed|-) echo "$2" ;;
    *) awk -v n="$1" -v t="$2" 'BEGIN { printf "%.1f", n / t / 1000 }' ;; esac
}

# Decoder steps of an archive, from its listing.
steps() { "$bin" -l --json "$1" | grep -o '"steps":[0-9]*' | head -1 | cut -d: -f2; }
# Microseconds per decoder step, from a run's seconds.
per_step() { # seconds steps
    case $1 in timeout|failed|-) echo "-" ;;
    *) awk -v t="$1" -v n="$2" 'BEGIN { printf "%.0f", t * 1e6 / n }' ;; esac
}

# The input of case "$1" in "$2".
slice() { # case output
    local level streams bytes file extra src
    IFS=: read -r level streams bytes file extra <<<"$1"
    src=.device/corpus/$file
    if [ ! -f "$src" ] && [ -f ".device/$file.gz" ]; then
        src=$work/files/$file
        [ -f "$src" ] || gunzip -c ".device/$file.gz" >"$src"
    fi
    if [ "$bytes" -gt 0 ]; then head -c "$bytes" "$src" >"$2"; else cp "$src" "$2"; fi
}
# The compression flags of case "$1", one per line.
case_flags() {
    local level streams bytes file extra more
    IFS=: read -r level streams bytes file extra <<<"$1"
    echo "-$level"
    [ "$streams" = s ] || printf '%s\n' --streams "$streams"
    [ -z "${extra:-}" ] || { IFS=, read -r -a more <<<"$extra"; printf '%s\n' "${more[@]}"; }
}

# The format version this binary writes, from an empty archive's listing.
format_version() { : | "$bin" -c | "$bin" -l --json | grep -o '"format_version":[0-9]*' | cut -d: -f2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# The reference line of case "$1" for input "$2" in this format version: "bytes sha256".
reference_of() {
    [ -f "$reference" ] || return 0
    awk -v c="$1" -v i="$(sha "$2")" -v v="$(format_version)" \
        '$1 == c && $2 == i && $3 == v { print $4, $5 }' "$reference" | tail -1
}

if [ "$write_reference" = 1 ]; then
    for c in "${cases[@]}"; do
        slice "$c" "$work/in"
        mapfile -t flags < <(case_flags "$c")
        "$bin" compress -f --backend cpu "${flags[@]}" "$work/in" -o "$work/c.nng" || exit 1
        line="$c $(sha "$work/in") $(format_version) $(stat -c %s "$work/c.nng") $(sha "$work/c.nng")"
        { [ ! -f "$reference" ] || awk -v c="$c" '$1 != c' "$reference"; echo "$line"; } >"$work/ref"
        mv "$work/ref" "$reference"
        echo "$line"
    done
    rm -rf "$work"
    exit 0
fi

printf '| level | streams | flags | input | bytes | archive | bits/byte | bytes/step | gpu comp KB/s | cpu comp KB/s | gpu dec KB/s | cpu dec KB/s | gpu dec µs/step | cpu dec µs/step | gpu = cpu |\n'
printf '|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n'
for c in "${cases[@]}"; do
    IFS=: read -r level streams bytes file extra <<<"$c"
    in=$work/in
    slice "$c" "$in"
    n=$(stat -c %s "$in")
    mapfile -t flags < <(case_flags "$c")
    # Decompression takes the case's thread count (frames decode in parallel), nothing else.
    dflags=()
    for f in "${flags[@]}"; do case $f in -T*|--threads*) dflags+=("$f") ;; esac; done
    gpu_only=false
    if [ "$cpu_max" -gt 0 ] && [ "$n" -gt "$cpu_max" ]; then gpu_only=true; fi
    case_limit=$limit
    ! $gpu_only || case_limit=$large_limit
    gc=$(timed gpu compress "$in" "$work/g.nng" "${flags[@]}") || status=1
    if $gpu_only; then
        cc=-; cd=-
        cp "$work/g.nng" "$work/c.nng"
        gd=$(timed gpu decompress "$work/g.nng" "$work/from-gpu" "${dflags[@]}") || status=1
        same="gpu only"
        cmp -s "$in" "$work/from-gpu" && same="$same, decoded" || { same="$same, DECODE FAILED"; status=1; }
        ref=$(reference_of "$c" "$in")
        if [ -z "$ref" ]; then
            same="$same, no twin reference"
        elif [ "$ref" = "$(stat -c %s "$work/g.nng") $(sha "$work/g.nng")" ]; then
            same="$same, = the twin's archive (reference)"
        else
            same="$same, DIFFERS FROM THE TWIN'S REFERENCE"; status=1
        fi
    else
        cc=$(timed cpu compress "$in" "$work/c.nng" "${flags[@]}") || status=1
        same=no
        cmp -s "$work/g.nng" "$work/c.nng" && same=yes || status=1
        gd=$(timed gpu decompress "$work/c.nng" "$work/from-cpu" "${dflags[@]}") || status=1
        cd=$(timed cpu decompress "$work/g.nng" "$work/from-gpu" "${dflags[@]}") || status=1
        if cmp -s "$in" "$work/from-cpu" && cmp -s "$in" "$work/from-gpu"; then
            same="$same, cross-decoded"
        else
            same="$same, CROSS-DECODE FAILED"; status=1
        fi
    fi
    size=$(stat -c %s "$work/c.nng" 2>/dev/null || echo 0)
    bpb=$(awk -v a="$size" -v n="$n" 'BEGIN { printf "%.3f", a * 8 / n }')
    k=$(steps "$work/c.nng"); k=${k:-0}
    bps=$(awk -v n="$n" -v k="$k" 'BEGIN { if (k > 0) printf "%.1f", n / k; else print "-" }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$level" "$streams" "${extra:-}" "$file" "$n" "$size" "$bpb" "$bps" \
        "$(kbs "$n" "$gc")" "$(kbs "$n" "$cc")" "$(kbs "$n" "$gd")" "$(kbs "$n" "$cd")" \
        "$(per_step "$gd" "$k")" "$(per_step "$cd" "$k")" "$same"
    rm -f "$work"/g.nng "$work"/c.nng "$work"/from-*
done
for i in $profiled; do
    c=${cases[$((i - 1))]:-}
    [ -n "$c" ] || continue
    slice "$c" "$work/in"
    mapfile -t flags < <(case_flags "$c")
    for mode in compress decompress; do
        echo
        echo "GPU profile of case $i ($c), $mode:"
        if [ $mode = compress ]; then from=$work/in; to=$work/p.nng; else from=$work/p.nng; to=$work/p.out; fi
        [ $mode = compress ] || flags=()
        NNGPU_GPU_PROFILE=1 timeout "$limit" "$bin" "$mode" -f --backend gpu "${flags[@]}" "$from" -o "$to" 2>&1 \
            | grep -v XDG_RUNTIME_DIR || echo "(failed or timed out)"
    done
    rm -f "$work"/p.nng "$work"/p.out
done
rm -rf "$work"
exit $status
