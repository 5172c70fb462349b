// The LSTM cell with a tied input gate, as `kernels::cell_forward`; records what the backward
// pass needs in the window buffers. One invocation per (stream, cell).
@group(0) @binding(2) var<storage, read> z: array<i32>;
@group(0) @binding(3) var<storage, read_write> c_all: array<i32>;
@group(0) @binding(4) var<storage, read_write> h_all: array<i32>;
@group(0) @binding(5) var<storage, read_write> gates_win: array<i32>;
@group(0) @binding(6) var<storage, read_write> c_prev_win: array<i32>;
@group(0) @binding(7) var<storage, read_write> tanh_c_win: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= step.streams * CELLS {
        return;
    }
    let s = i / CELLS;
    let j = i % CELLS;
    let rows = 3u * CELLS;
    let f = sigmoid(z[s * rows + j]);
    let o = sigmoid(z[s * rows + CELLS + j]);
    let g = tanh_q(z[s * rows + 2u * CELLS + j]);
    let g_at = (step.base + s) * rows;
    gates_win[g_at + j] = f;
    gates_win[g_at + CELLS + j] = o;
    gates_win[g_at + 2u * CELLS + j] = g;
    let state = LAYER * STREAMS * CELLS + s * CELLS + j;
    let c_prev = c_all[state];
    let half = 1 << (ACT_FRAC - 1u);
    let c_new = (f * c_prev + (ONE - f) * g + half) >> ACT_FRAC;
    let t = tanh_q(c_new);
    c_prev_win[(step.base + s) * CELLS + j] = c_prev;
    tanh_c_win[(step.base + s) * CELLS + j] = t;
    c_all[state] = c_new;
    h_all[state] = (o * t + half) >> ACT_FRAC;
}
