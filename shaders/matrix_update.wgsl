// Weight gradient and Adam step of a ROWS × COLS matrix, as `kernels::matrix_update`. One
// invocation per weight sums over the window's stream-steps (exact in i64).
@group(0) @binding(2) var<storage, read> dz_win: array<i32>;
@group(0) @binding(3) var<storage, read> x_win: array<i32>;
@group(0) @binding(4) var<storage, read_write> master: array<i32>;
@group(0) @binding(5) var<storage, read_write> second_moment: array<u64>;
@group(0) @binding(6) var<storage, read_write> forward: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= ROWS * COLS {
        return;
    }
    let r = i / COLS;
    let k = i % COLS;
    var acc = i64(0);
    for (var j = 0u; j < step.recorded; j += 1u) {
        acc += i64(dz_win[j * ROWS + r]) * i64(x_win[j * COLS + k]);
    }
    let next = adam_step(acc, AdamState(master[i], second_moment[i]));
    master[i] = next.w;
    second_moment[i] = next.v;
    forward[i] = i32(round_shift(i64(next.w), MASTER_FRAC - ACT_FRAC));
}
