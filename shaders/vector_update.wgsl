// Gradient and Adam step of a bias (EMBEDDED = false, as `kernels::bias_update`) or of a
// 256 × ROWS embedding (EMBEDDED = true, as `kernels::embedding_update`: each row sums the
// stream-steps whose input symbol it embeds, listed by `symbol_order`). One invocation per
// value; the sums are exact in i64, in window order.
@group(0) @binding(2) var<storage, read> dz_win: array<i32>;
// `symbol_order`'s index (unused by a bias).
@group(0) @binding(3) var<storage, read> by_symbol: array<u32>;
@group(0) @binding(4) var<storage, read_write> master: array<i32>;
@group(0) @binding(5) var<storage, read_write> second_moment: array<u64>;

@compute @workgroup_size(THREADS)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    let count = select(ROWS, SYMBOLS * ROWS, EMBEDDED);
    if i >= count {
        return;
    }
    let symbol = i / ROWS;
    let r = i % ROWS;
    var acc = i64(0);
    if EMBEDDED {
        for (var n = by_symbol[symbol]; n < by_symbol[symbol + 1u]; n += 1u) {
            acc += i64(dz_win[by_symbol[SYMBOLS + 1u + n] * ROWS + r]);
        }
    } else {
        for (var j = 0u; j < step.recorded; j += 1u) {
            acc += i64(dz_win[j * ROWS + r]);
        }
    }
    let next = adam_step(acc << ACT_FRAC, AdamState(master[i], second_moment[i]));
    master[i] = next.w;
    second_moment[i] = next.v;
}
