// Integer softmax to a frequency table, as `kernels::softmax_freq`. One invocation per stream
// walks its 256 logits in order.
@group(0) @binding(2) var<storage, read> logits: array<i32>;
@group(0) @binding(3) var<storage, read_write> freqs_win: array<u32>;
// The softmax without the coder's floor, Q16: the training target.
@group(0) @binding(4) var<storage, read_write> probs_win: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let s = id.x;
    if s >= step.streams {
        return;
    }
    let l = s * SYMBOLS;
    let out = (step.base + s) * SYMBOLS;
    var max_logit = logits[l];
    var argmax = 0u;
    for (var i = 1u; i < SYMBOLS; i += 1u) {
        if logits[l + i] > max_logit {
            max_logit = logits[l + i];
            argmax = i;
        }
    }
    var sum = 0u;
    for (var i = 0u; i < SYMBOLS; i += 1u) {
        let e = u32(exp_neg(max_logit - logits[l + i]));
        probs_win[out + i] = e;
        sum += e;
    }
    let spread = FREQ_TOTAL - SYMBOLS;
    var total = 0u;
    for (var i = 0u; i < SYMBOLS; i += 1u) {
        let e = probs_win[out + i];
        let f = 1u + e * spread / sum;
        freqs_win[out + i] = f;
        total += f;
        probs_win[out + i] = (e << FREQ_TOTAL_BITS) / sum;
    }
    freqs_win[out + argmax] += FREQ_TOTAL - total;
}
