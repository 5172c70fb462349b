// The output head and the integer softmax to a frequency table, as `kernels::head_softmax`
// (`kernels::head_forward`, then `kernels::softmax_freq`).
//
// One workgroup of SYMBOLS threads per tile of STREAM_TILE streams from `step.first` on;
// thread r computes logit r of every stream of the tile, so each weight row is read once per
// tile. The head's input (every layer's new hidden state, in the window) passes through
// workgroup memory in chunks of CHUNK columns. The softmax's maximum, sums and total are fixed-order trees in workgroup
// memory (no atomics, no subgroup operations); the sums are exact in u32 (`fixed`'s bounds),
// and the maximum keeps the lowest index among equal logits, as the twin's first-maximum rule.
@group(0) @binding(2) var<storage, read> w: array<vec4<i32>>;
@group(0) @binding(3) var<storage, read> bias: array<i32>;
@group(0) @binding(4) var<storage, read> head_in_win: array<i32>;
// The frequency tables as u16, two symbols a u32 (symbol 2i in the low half), which is exact
// (no entry exceeds FREQ_TOTAL - SYMBOLS + 1 < 2^16) and halves the bytes the host reads back.
@group(0) @binding(5) var<storage, read_write> freqs_win: array<u32>;
// The softmax without the coder's floor, Q16: the training target.
@group(0) @binding(6) var<storage, read_write> probs_win: array<u32>;

const QUADS: u32 = COLS / 4u;
const CHUNK_QUADS: u32 = CHUNK / 4u;
var<workgroup> xs: array<vec4<i32>, STREAM_TILE * CHUNK_QUADS>;
var<workgroup> best: array<i32, SYMBOLS>;
var<workgroup> best_at: array<u32, SYMBOLS>;
var<workgroup> sums: array<u32, SYMBOLS>;
// Every symbol's frequency before the rounding remainder, for the threads that pack pairs.
var<workgroup> freqs: array<u32, SYMBOLS>;

// The largest of every thread's `value` and the lowest thread index holding it.
fn maximum(t: u32, value: i32) -> vec2<i32> {
    workgroupBarrier();
    best[t] = value;
    best_at[t] = t;
    for (var stride = SYMBOLS / 2u; stride > 0u; stride >>= 1u) {
        workgroupBarrier();
        if t < stride {
            let v = best[t + stride];
            let a = best_at[t + stride];
            if v > best[t] || (v == best[t] && a < best_at[t]) {
                best[t] = v;
                best_at[t] = a;
            }
        }
    }
    workgroupBarrier();
    return vec2<i32>(best[0], i32(best_at[0]));
}

// The sum of every thread's `value`, by halves.
fn total(t: u32, value: u32) -> u32 {
    workgroupBarrier();
    sums[t] = value;
    for (var stride = SYMBOLS / 2u; stride > 0u; stride >>= 1u) {
        workgroupBarrier();
        if t < stride {
            sums[t] += sums[t + stride];
        }
    }
    workgroupBarrier();
    return sums[0];
}

@compute @workgroup_size(SYMBOLS)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) r: u32,
) {
    let own = forward_tile(group.x);
    let first = own.x;
    let tile = own.y;
    var acc: array<i64, STREAM_TILE>;
    for (var s = 0u; s < STREAM_TILE; s += 1u) {
        acc[s] = i64(bias[r]);
    }
    for (var k0 = 0u; k0 < COLS; k0 += CHUNK) {
        let width = min(CHUNK, COLS - k0);
        workgroupBarrier();
        for (var i = r; i < tile * width; i += SYMBOLS) {
            let s = i / width;
            let k = i % width;
            xs[s * CHUNK_QUADS + k / 4u][k % 4u] = head_in_win[(step.base + first + s) * COLS + k0 + k];
        }
        workgroupBarrier();
        for (var q = 0u; q < width / 4u; q += 1u) {
            let wr = w[r * QUADS + k0 / 4u + q];
            // Streams past the tile read zeros or stale values and are never written back.
            for (var s = 0u; s < STREAM_TILE; s += 1u) {
                acc[s] += i64(dot(wr, xs[s * CHUNK_QUADS + q]));
            }
        }
    }
    let spread = FREQ_TOTAL - SYMBOLS;
    for (var s = 0u; s < tile; s += 1u) {
        let logit = clamp_i32(round_shift(acc[s], ACT_FRAC), LOGIT_LIMIT);
        let top = maximum(r, logit);
        let e = u32(exp_neg(top.x - logit));
        let sum = total(r, e);
        let f = 1u + e * spread / sum;
        // `total`'s barriers publish `freqs` (and the next write to it comes after the next
        // stream's `maximum` barriers), so packing the pairs costs no barrier of its own.
        freqs[r] = f;
        let left = FREQ_TOTAL - total(r, f);
        let row = step.base + first + s;
        probs_win[row * SYMBOLS + r] = (e << FREQ_TOTAL_BITS) / sum;
        if r < SYMBOLS / 2u {
            let lo = 2u * r;
            let pair = vec2<u32>(freqs[lo], freqs[lo + 1u])
                + select(vec2<u32>(0u), vec2<u32>(left), vec2<u32>(lo, lo + 1u) == vec2<u32>(u32(top.y)));
            freqs_win[row * (SYMBOLS / 2u) + r] = pair.x | (pair.y << 16u);
        }
    }
}
