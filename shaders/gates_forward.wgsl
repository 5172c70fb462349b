// Gate pre-activations of one layer, as `kernels::gates_forward`. Also serves the output head
// (EMBEDDED = false, LIMIT = LOGIT_LIMIT). One invocation per (stream, row); the dot product
// is exact in i64, so its order does not matter.
@group(0) @binding(2) var<storage, read> w: array<i32>;
@group(0) @binding(3) var<storage, read> embedding: array<i32>;
@group(0) @binding(4) var<storage, read> bias: array<i32>;
@group(0) @binding(5) var<storage, read> x_win: array<i32>;
@group(0) @binding(6) var<storage, read> symbols_win: array<u32>;
@group(0) @binding(7) var<storage, read_write> z: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= step.streams * ROWS {
        return;
    }
    let s = i / ROWS;
    let r = i % ROWS;
    let x = (step.base + s) * COLS;
    var acc = i64(bias[r]);
    if EMBEDDED {
        acc += i64(embedding[symbols_win[step.base + s] * ROWS + r]);
    }
    for (var k = 0u; k < COLS; k += 1u) {
        acc += i64(w[r * COLS + k] * x_win[x + k]);
    }
    z[s * ROWS + r] = clamp_i32(round_shift(acc, ACT_FRAC), LIMIT);
}
