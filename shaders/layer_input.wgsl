// The input of layer L's matrix for every active stream, recorded in the window:
// [h of layer L-1 (this step), h of layer L (previous step)], as `CpuBackend::forward`.
@group(0) @binding(2) var<storage, read> h_all: array<i32>;
@group(0) @binding(3) var<storage, read_write> x_win: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= step.streams * COLS {
        return;
    }
    let s = i / COLS;
    let k = i % COLS;
    let below = COLS - CELLS;
    var value: i32;
    if k < below {
        value = h_all[(LAYER - 1u) * STREAMS * CELLS + s * CELLS + k];
    } else {
        value = h_all[LAYER * STREAMS * CELLS + s * CELLS + k - below];
    }
    x_win[(step.base + s) * COLS + k] = value;
}
