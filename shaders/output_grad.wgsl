// Gradient of the coding loss with respect to the logits, as `kernels::output_grad`, for
// every stream-step of the window in one dispatch: it does not depend on the recurrence.
// Thread i takes values i, i + (threads dispatched), …, so that a window of any width fits in
// one dispatch (`Kernel::record_strided`).
@group(0) @binding(2) var<storage, read> probs_win: array<u32>;
@group(0) @binding(3) var<storage, read> targets_win: array<u32>;
@group(0) @binding(4) var<storage, read_write> dlogits_win: array<i32>;

@compute @workgroup_size(THREADS)
fn main(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = id.x; i < step.recorded * SYMBOLS; i += groups.x * THREADS) {
        let j = i / SYMBOLS;
        let symbol = i % SYMBOLS;
        var y = 0;
        if symbol == targets_win[j] {
            y = i32(FREQ_TOTAL);
        }
        dlogits_win[i] = (i32(probs_win[i]) - y) << (GRAD_FRAC - FREQ_TOTAL_BITS);
    }
}
