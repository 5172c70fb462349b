// One step of LSTM layer LAYER, as `kernels::layer_forward`: gathers the layer's input
// [h of layer LAYER-1 (this step), own h (previous step)] into the window, forms the gate
// pre-activations (`kernels::gates_forward`) and runs the cell (`kernels::cell_forward`).
//
// One workgroup per tile of STREAM_TILE streams from `step.first` on, which owns those
// streams' state of this layer: it reads their hidden state into workgroup memory before it
// overwrites it, and no other workgroup touches it, so one dispatch does what took three.
// Each thread computes the three gate rows of a cell for every stream of the tile, so each
// weight is read once per tile. The dot products are exact (4 products below 2^27 each per `dot`, summed in i64), so
// their order does not matter.
@group(0) @binding(2) var<storage, read> w: array<vec4<i32>>;
@group(0) @binding(3) var<storage, read> embedding: array<i32>;
@group(0) @binding(4) var<storage, read> bias: array<i32>;
@group(0) @binding(5) var<storage, read> symbols_win: array<u32>;
@group(0) @binding(6) var<storage, read_write> h_all: array<i32>;
@group(0) @binding(7) var<storage, read_write> c_all: array<i32>;
@group(0) @binding(8) var<storage, read_write> x_win: array<i32>;
@group(0) @binding(9) var<storage, read_write> gates_win: array<i32>;
@group(0) @binding(10) var<storage, read_write> c_prev_win: array<i32>;
@group(0) @binding(11) var<storage, read_write> tanh_c_win: array<i32>;
@group(0) @binding(12) var<storage, read_write> head_in_win: array<i32>;

const QUADS: u32 = COLS / 4u;
var<workgroup> xs: array<vec4<i32>, STREAM_TILE * QUADS>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let own = forward_tile(group.x);
    let first = own.x;
    let tile = own.y;
    let below = COLS - CELLS;
    for (var i = t; i < tile * COLS; i += WORKGROUP_SIZE) {
        let s = first + i / COLS;
        let k = i % COLS;
        var value: i32;
        if k < below {
            value = h_all[(LAYER - 1u) * STREAMS * CELLS + s * CELLS + k];
        } else {
            value = h_all[LAYER * STREAMS * CELLS + s * CELLS + k - below];
        }
        x_win[(step.base + s) * COLS + k] = value;
        xs[(i / COLS) * QUADS + k / 4u][k % 4u] = value;
    }
    workgroupBarrier();
    let half = 1 << (ACT_FRAC - 1u);
    for (var j = t; j < CELLS; j += WORKGROUP_SIZE) {
        var acc_f: array<i64, STREAM_TILE>;
        var acc_o: array<i64, STREAM_TILE>;
        var acc_g: array<i64, STREAM_TILE>;
        for (var s = 0u; s < STREAM_TILE; s += 1u) {
            let e = symbols_win[step.base + first + min(s, tile - 1u)] * ROWS;
            acc_f[s] = i64(bias[j]) + i64(embedding[e + j]);
            acc_o[s] = i64(bias[CELLS + j]) + i64(embedding[e + CELLS + j]);
            acc_g[s] = i64(bias[2u * CELLS + j]) + i64(embedding[e + 2u * CELLS + j]);
        }
        for (var q = 0u; q < QUADS; q += 1u) {
            let wf = w[j * QUADS + q];
            let wo = w[(CELLS + j) * QUADS + q];
            let wg = w[(2u * CELLS + j) * QUADS + q];
            // Streams past the tile read zeros (workgroup memory starts zeroed) and are not
            // written back; the constant bound lets the compiler keep the sums in registers.
            for (var s = 0u; s < STREAM_TILE; s += 1u) {
                let x = xs[s * QUADS + q];
                acc_f[s] += i64(dot(wf, x));
                acc_o[s] += i64(dot(wo, x));
                acc_g[s] += i64(dot(wg, x));
            }
        }
        for (var s = 0u; s < tile; s += 1u) {
            let f = sigmoid(clamp_i32(round_shift(acc_f[s], ACT_FRAC), PREACT_LIMIT));
            let o = sigmoid(clamp_i32(round_shift(acc_o[s], ACT_FRAC), PREACT_LIMIT));
            let g = tanh_q(clamp_i32(round_shift(acc_g[s], ACT_FRAC), PREACT_LIMIT));
            let at = step.base + first + s;
            gates_win[at * ROWS + j] = f;
            gates_win[at * ROWS + CELLS + j] = o;
            gates_win[at * ROWS + 2u * CELLS + j] = g;
            let state = LAYER * STREAMS * CELLS + (first + s) * CELLS + j;
            let c_prev = c_all[state];
            let c_new = (f * c_prev + (ONE - f) * g + half) >> ACT_FRAC;
            let tc = tanh_q(c_new);
            c_prev_win[at * CELLS + j] = c_prev;
            tanh_c_win[at * CELLS + j] = tc;
            c_all[state] = c_new;
            let h = (o * tc + half) >> ACT_FRAC;
            h_all[state] = h;
            head_in_win[at * LAYERS * CELLS + LAYER * CELLS + j] = h;
        }
    }
}
