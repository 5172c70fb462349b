// Gradient of the coding loss with respect to the logits, as `kernels::output_grad`.
@group(0) @binding(2) var<storage, read> probs_win: array<u32>;
@group(0) @binding(3) var<storage, read> targets_win: array<u32>;
@group(0) @binding(4) var<storage, read_write> dlogits_win: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= step.streams * SYMBOLS {
        return;
    }
    let j = step.base + i / SYMBOLS;
    let symbol = i % SYMBOLS;
    var y = 0;
    if symbol == targets_win[j] {
        y = i32(FREQ_TOTAL);
    }
    dlogits_win[j * SYMBOLS + symbol] = (i32(probs_win[j * SYMBOLS + symbol]) - y) << (GRAD_FRAC - FREQ_TOTAL_BITS);
}
