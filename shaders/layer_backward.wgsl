// One step of back-propagation through layer LAYER, as `kernels::layer_backward`: the
// hidden-state gradient (from the head, from this layer's next step and from the layer above
// at this step), `kernels::cell_backward`, then the gradient with respect to the layer's
// matrix input (`kernels::input_grad`), in one dispatch instead of two.
//
// One workgroup of THREADS threads per tile of STREAM_TILE streams and block of THREADS input
// columns (workgroup (x, y) owns stream tile x and column block y); thread t owns column
// THREADS·y + t of every stream of the tile, so each weight is read once per tile. Each
// column's gradient needs every gate row of the tile, so every workgroup of a tile runs the
// tile's cells backward into workgroup memory: a few products per cell, against the ROWS
// products per column that follow. Only the workgroups of column block 0 write the gate
// gradients and the cell-state gradient out, so no value is written twice.
//
// The gradients from the next step come from buffers that step wrote, and this step's go to
// the other buffer of each pair (`GpuBackend::train` alternates the pairs by step parity), so
// no workgroup reads what another writes in the same dispatch. That carries a stream's
// gradients to the step before because the active streams are a prefix that never grows in
// forward order (`Backend`): going backwards, a stream active at a step is active at every
// earlier step of the window, and a stream's first step finds both buffers still cleared.
//
// The sums are exact in i64 (products below 2^15 · 2^27, at most 3 · MAX_CELLS rows: below
// 2^54, `fixed`), so their order does not matter. No atomics, no subgroup operations.
@group(0) @binding(2) var<storage, read> w: array<i32>;
// The head's input gradient, every stream-step of the window (LAYERS · CELLS columns).
@group(0) @binding(3) var<storage, read> dhead_win: array<i32>;
// This layer's input gradient at the step after this one (its last CELLS columns).
@group(0) @binding(4) var<storage, read> dx_next: array<i32>;
// The layer above's input gradient at this step (its first CELLS columns); unused at the top.
@group(0) @binding(5) var<storage, read> dx_above: array<i32>;
@group(0) @binding(6) var<storage, read> gates_win: array<i32>;
@group(0) @binding(7) var<storage, read> c_prev_win: array<i32>;
@group(0) @binding(8) var<storage, read> tanh_c_win: array<i32>;
// Every layer's cell-state gradient at the step after this one, and at this one.
@group(0) @binding(9) var<storage, read> dc_next: array<i32>;
@group(0) @binding(10) var<storage, read_write> dc: array<i32>;
@group(0) @binding(11) var<storage, read_write> dz_win: array<i32>;
@group(0) @binding(12) var<storage, read_write> dx: array<i32>;

var<workgroup> dzs: array<i32, STREAM_TILE * ROWS>;

fn mul(a: i64, b: i32) -> i64 {
    return round_shift(a * i64(b), ACT_FRAC);
}

fn lim(x: i64) -> i32 {
    return clamp_i32(x, GRAD_LIMIT);
}

@compute @workgroup_size(THREADS)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let first = group.x * STREAM_TILE;
    let tile = min(STREAM_TILE, step.streams - first);
    for (var i = t; i < tile * CELLS; i += THREADS) {
        let s = first + i / CELLS;
        let j = i % CELLS;
        let at = step.base + s;
        var sum = i64(dhead_win[at * LAYERS * CELLS + LAYER * CELLS + j]) + i64(dx_next[s * COLS + COLS - CELLS + j]);
        if LAYER + 1u < LAYERS {
            sum += i64(dx_above[s * 2u * CELLS + j]);
        }
        let d_h = i64(lim(sum));
        let f = gates_win[at * ROWS + j];
        let o = gates_win[at * ROWS + CELLS + j];
        let g = gates_win[at * ROWS + 2u * CELLS + j];
        let tc = tanh_c_win[at * CELLS + j];
        let d_o = mul(d_h, tc);
        let d_t = mul(d_h, o);
        let tanh_slope = ONE - i32(mul(i64(tc), tc));
        let state = LAYER * STREAMS * CELLS + s * CELLS + j;
        let d_c = i64(lim(i64(dc_next[state]) + mul(d_t, tanh_slope)));
        let d_f = mul(d_c, c_prev_win[at * CELLS + j] - g);
        let d_g = mul(d_c, ONE - f);
        let z_f = lim(mul(d_f, i32(mul(i64(f), ONE - f))));
        let z_o = lim(mul(d_o, i32(mul(i64(o), ONE - o))));
        let z_g = lim(mul(d_g, ONE - i32(mul(i64(g), g))));
        let local = (i / CELLS) * ROWS;
        dzs[local + j] = z_f;
        dzs[local + CELLS + j] = z_o;
        dzs[local + 2u * CELLS + j] = z_g;
        if group.y == 0u {
            dc[state] = lim(mul(d_c, f));
            dz_win[at * ROWS + j] = z_f;
            dz_win[at * ROWS + CELLS + j] = z_o;
            dz_win[at * ROWS + 2u * CELLS + j] = z_g;
        }
    }
    workgroupBarrier();
    let k = group.y * THREADS + t;
    if k < COLS {
        var acc: array<i64, STREAM_TILE>;
        for (var r = 0u; r < ROWS; r += 1u) {
            let wv = i64(w[r * COLS + k]);
            // Streams past the tile read zeros (workgroup memory starts zeroed) and are never
            // written back; the constant bound lets the compiler keep the sums in registers.
            for (var s = 0u; s < STREAM_TILE; s += 1u) {
                acc[s] += wv * i64(dzs[s * ROWS + r]);
            }
        }
        for (var s = 0u; s < tile; s += 1u) {
            dx[(first + s) * COLS + k] = clamp_i32(round_shift(acc[s], ACT_FRAC), GRAD_LIMIT);
        }
    }
}
