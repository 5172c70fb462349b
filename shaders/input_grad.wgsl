// Gradient with respect to a matrix's input, as `kernels::input_grad`. One invocation per
// (stream, column); the sum over rows is exact in i64.
@group(0) @binding(2) var<storage, read> w: array<i32>;
@group(0) @binding(3) var<storage, read> dz_win: array<i32>;
@group(0) @binding(4) var<storage, read_write> dx: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= step.streams * COLS {
        return;
    }
    let s = i / COLS;
    let k = i % COLS;
    let d = (step.base + s) * ROWS;
    var acc = i64(0);
    for (var r = 0u; r < ROWS; r += 1u) {
        acc += i64(w[r * COLS + k]) * i64(dz_win[d + r]);
    }
    dx[s * COLS + k] = clamp_i32(round_shift(acc, ACT_FRAC), GRAD_LIMIT);
}
