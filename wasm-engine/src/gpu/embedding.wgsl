// out[t, c] = table[ids[t], c] (+ pos[offset + t, c]): token embedding lookup, with the
// learned position embedding of GPT-2 added when has_pos is set.

struct Params {
    n_tokens: u32,
    dim: u32,
    offset: u32,
    has_pos: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid;
    if (i >= p.n_tokens * p.dim) {
        return;
    }
    let t = i / p.dim;
    let c = i % p.dim;
    var v = table[ids[t] * p.dim + c];
    if (p.has_pos != 0u) {
        v += pos[(p.offset + t) * p.dim + c];
    }
    out[i] = v;
}
