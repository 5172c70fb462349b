// Back-propagation through the cell of layer LAYER, as `kernels::cell_backward`, including the
// sum of the hidden-state gradient from the head, from the layer above (same step) and from
// the next step. One invocation per (stream, cell).
@group(0) @binding(2) var<storage, read> dhead: array<i32>;
// This layer's input gradient from the step after this one (its last CELLS columns).
@group(0) @binding(3) var<storage, read> dx_own: array<i32>;
// The layer above's input gradient at this step (its first CELLS columns); unused at the top.
@group(0) @binding(4) var<storage, read> dx_above: array<i32>;
@group(0) @binding(5) var<storage, read> gates_win: array<i32>;
@group(0) @binding(6) var<storage, read> c_prev_win: array<i32>;
@group(0) @binding(7) var<storage, read> tanh_c_win: array<i32>;
@group(0) @binding(8) var<storage, read_write> dc_all: array<i32>;
@group(0) @binding(9) var<storage, read_write> dz_win: array<i32>;

fn mul(a: i64, b: i32) -> i64 {
    return round_shift(a * i64(b), ACT_FRAC);
}

fn lim(x: i64) -> i32 {
    return clamp_i32(x, GRAD_LIMIT);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= step.streams * CELLS {
        return;
    }
    let s = i / CELLS;
    let j = i % CELLS;
    let cols = select(CELLS, 2u * CELLS, LAYER > 0u);
    var sum = i64(dhead[s * LAYERS * CELLS + LAYER * CELLS + j]) + i64(dx_own[s * cols + cols - CELLS + j]);
    if LAYER + 1u < LAYERS {
        sum += i64(dx_above[s * 2u * CELLS + j]);
    }
    let d_h = i64(lim(sum));
    let at = step.base + s;
    let rows = 3u * CELLS;
    let f = gates_win[at * rows + j];
    let o = gates_win[at * rows + CELLS + j];
    let g = gates_win[at * rows + 2u * CELLS + j];
    let t = tanh_c_win[at * CELLS + j];
    let d_o = mul(d_h, t);
    let d_t = mul(d_h, o);
    let tanh_slope = ONE - i32(mul(i64(t), t));
    let state = LAYER * STREAMS * CELLS + s * CELLS + j;
    let d_c = i64(lim(i64(dc_all[state]) + mul(d_t, tanh_slope)));
    let d_f = mul(d_c, c_prev_win[at * CELLS + j] - g);
    let d_g = mul(d_c, ONE - f);
    dc_all[state] = lim(mul(d_c, f));
    dz_win[at * rows + j] = lim(mul(d_f, i32(mul(i64(f), ONE - f))));
    dz_win[at * rows + CELLS + j] = lim(mul(d_o, i32(mul(i64(o), ONE - o))));
    dz_win[at * rows + 2u * CELLS + j] = lim(mul(d_g, ONE - i32(mul(i64(g), g))));
}
