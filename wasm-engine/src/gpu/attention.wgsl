// Causal multi-head attention over a KV cache (Vaswani et al. 2017, §3.2.1).
//
// qkv holds the fused projection of the new tokens, (t, 3c): queries, keys and values side
// by side, head h at columns h·d .. (h+1)·d of each. The cache holds every position's keys
// and values per head, (n_head, max_len, d). `kv_append` writes the new tokens' keys and
// values at positions offset .. offset + t; `attend` then computes, for new token i and head
// h, softmax(q kᵀ / √d) v over the offset + i + 1 positions it may see.

struct Params {
    t_new: u32,
    offset: u32,
    n_head: u32,
    head_dim: u32,
    max_len: u32,
    c: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn kv_append(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid;
    if (i >= p.t_new * p.c) {
        return;
    }
    let t = i / p.c;
    let col = i % p.c;
    let h = col / p.head_dim;
    let d = col % p.head_dim;
    let dst = (h * p.max_len + p.offset + t) * p.head_dim + d;
    k_cache[dst] = qkv[t * 3u * p.c + p.c + col];
    v_cache[dst] = qkv[t * 3u * p.c + 2u * p.c + col];
}

const WG: u32 = 64u;
// The longest context one workgroup holds the scores of (16 KiB of workgroup memory is
// WebGPU's guaranteed minimum; this takes 8 KiB + the reduction's 256 bytes).
const MAX_CONTEXT: u32 = 2048u;
var<workgroup> scores: array<f32, 2048>;
var<workgroup> red: array<f32, 64>;

// Dispatched as (t_new, n_head): one workgroup per new token and head.
@compute @workgroup_size(64)
fn attend(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = wg.x;
    let h = wg.y;
    let d = p.head_dim;
    let len = p.offset + t + 1u; // the causal mask: positions 0 ..= offset + t
    let q = t * 3u * p.c + h * d;
    let head = h * p.max_len * d;

    var m = -3.402823e38;
    for (var j = lid; j < len; j += WG) {
        let k = head + j * d;
        var s = 0.0;
        for (var e = 0u; e < d; e++) {
            s = fma(qkv[q + e], k_cache[k + e], s);
        }
        s = s * p.scale;
        scores[j] = s;
        m = max(m, s);
    }
    red[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let mx = red[0];
    workgroupBarrier();

    var sum = 0.0;
    for (var j = lid; j < len; j += WG) {
        let e = exp(scores[j] - mx);
        scores[j] = e;
        sum += e;
    }
    red[lid] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / red[0];

    for (var e = lid; e < d; e += WG) {
        var acc = 0.0;
        for (var j = 0u; j < len; j++) {
            acc = fma(scores[j], v_cache[head + j * d + e], acc);
        }
        out[t * p.c + h * d + e] = acc * inv;
    }
}
