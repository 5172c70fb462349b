// Gradient with respect to a matrix's input, as `kernels::input_grad`, for every stream-step
// of the window in one dispatch (the head's: it does not depend on the recurrence):
// `dx[j][k] = Σ_r W[r][k] · dz[j][r]`, rounded and clamped, for j below `step.recorded`.
//
// One workgroup of THREADS threads per tile of STREAM_TILE stream-steps and THREADS columns
// (workgroup (x, y) owns column block y and the tiles x, x + (workgroups in x), …, so that a
// window of more than 65,535 tiles still takes one dispatch); thread t owns column
// THREADS·y + t of every stream-step of the tile, so each weight is read once per tile. The
// tile's dz rows pass through workgroup memory ROW_CHUNK rows at a time. The sums are exact
// in i64 (products below 2^15 · 2^27, at most 3 · MAX_CELLS rows: below 2^54, `fixed`), so
// their order does not matter.
@group(0) @binding(2) var<storage, read> w: array<i32>;
@group(0) @binding(3) var<storage, read> dz_win: array<i32>;
@group(0) @binding(4) var<storage, read_write> dx_win: array<i32>;

const ROW_CHUNK: u32 = 64u;
var<workgroup> dzs: array<i32, STREAM_TILE * ROW_CHUNK>;

@compute @workgroup_size(THREADS)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tiles = (step.recorded + STREAM_TILE - 1u) / STREAM_TILE;
    let k = group.y * THREADS + t;
    for (var x = group.x; x < tiles; x += groups.x) {
        let first = x * STREAM_TILE;
        let tile = min(STREAM_TILE, step.recorded - first);
        // Zeroed by hand for every tile: naga before gfx-rs/wgpu#9592 zeroes a declaration
        // without initializer once per invocation, not once per iteration of its loop.
        var acc: array<i64, STREAM_TILE>;
        for (var s = 0u; s < STREAM_TILE; s += 1u) {
            acc[s] = 0;
        }
        for (var r0 = 0u; r0 < ROWS; r0 += ROW_CHUNK) {
            let width = min(ROW_CHUNK, ROWS - r0);
            workgroupBarrier();
            for (var i = t; i < tile * width; i += THREADS) {
                let s = i / width;
                let r = i % width;
                dzs[s * ROW_CHUNK + r] = dz_win[(first + s) * ROWS + r0 + r];
            }
            workgroupBarrier();
            if k < COLS {
                for (var r = 0u; r < width; r += 1u) {
                    let wv = i64(w[(r0 + r) * COLS + k]);
                    // Stream-steps past the tile read zeros or stale values and are never
                    // written back; the constant bound lets the compiler keep the sums in
                    // registers.
                    for (var s = 0u; s < STREAM_TILE; s += 1u) {
                        acc[s] += wv * i64(dzs[s * ROW_CHUNK + r]);
                    }
                }
            }
        }
        if k < COLS {
            for (var s = 0u; s < tile; s += 1u) {
                dx_win[(first + s) * COLS + k] = clamp_i32(round_shift(acc[s], ACT_FRAC), GRAD_LIMIT);
            }
        }
    }
}
