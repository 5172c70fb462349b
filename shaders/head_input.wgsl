// The output head's input, every layer's new hidden state, recorded in the window.
@group(0) @binding(2) var<storage, read> h_all: array<i32>;
@group(0) @binding(3) var<storage, read_write> head_in_win: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    let cols = LAYERS * CELLS;
    if i >= step.streams * cols {
        return;
    }
    let s = i / cols;
    let k = i % cols;
    let l = k / CELLS;
    head_in_win[(step.base + s) * cols + k] = h_all[l * STREAMS * CELLS + s * CELLS + k % CELLS];
}
