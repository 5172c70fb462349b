// The window's stream-steps grouped by input symbol, for the embedding updates
// (`vector_update` with EMBEDDED): `by_symbol[σ]` is where symbol σ's stream-steps start in
// `by_symbol[SYMBOLS + 1 ..]` (and `by_symbol[σ + 1]` where they end), each group in window
// order. One workgroup; thread σ scans the window once for its symbol, so each embedding
// value then sums only its own stream-steps instead of every thread rescanning the window.
@group(0) @binding(2) var<storage, read> symbols_win: array<u32>;
@group(0) @binding(3) var<storage, read_write> by_symbol: array<u32>;

var<workgroup> counts: array<u32, SYMBOLS>;

@compute @workgroup_size(SYMBOLS)
fn main(@builtin(local_invocation_index) symbol: u32) {
    var count = 0u;
    for (var j = 0u; j < step.recorded; j += 1u) {
        count += select(0u, 1u, symbols_win[j] == symbol);
    }
    counts[symbol] = count;
    workgroupBarrier();
    // Where this symbol's group starts: the counts of the symbols before it, in order.
    var start = 0u;
    for (var s = 0u; s < symbol; s += 1u) {
        start += counts[s];
    }
    by_symbol[symbol] = start;
    if symbol == SYMBOLS - 1u {
        by_symbol[SYMBOLS] = start + count;
    }
    var at = SYMBOLS + 1u + start;
    for (var j = 0u; j < step.recorded; j += 1u) {
        if symbols_win[j] == symbol {
            by_symbol[at] = j;
            at += 1u;
        }
    }
}
