// LayerNorm and softmax over the last dimension: one workgroup of 64 threads per row, each
// thread striding over the row, partial results combined by a tree in workgroup memory.

struct Params {
    rows: u32,
    cols: u32,
    has_bias: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
var<workgroup> red: array<f32, 64>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

fn reduce_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

// out = (x - mean) / sqrt(var + eps) * w + b (Ba et al. 2016), two passes as the CPU path.
@compute @workgroup_size(64)
fn layer_norm(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let n = f32(p.cols);
    var s = 0.0;
    for (var i = lid; i < p.cols; i += WG) {
        s += x[base + i];
    }
    let mean = reduce_sum(lid, s) / n;
    var v = 0.0;
    for (var i = lid; i < p.cols; i += WG) {
        let d = x[base + i] - mean;
        v += d * d;
    }
    let inv = 1.0 / sqrt(reduce_sum(lid, v) / n + p.eps);
    for (var i = lid; i < p.cols; i += WG) {
        var y = (x[base + i] - mean) * inv * w[i];
        if (p.has_bias != 0u) {
            y += b[i];
        }
        out[base + i] = y;
    }
}

// x = softmax(x) along each row, in place, shifted by the row's max.
@compute @workgroup_size(64)
fn softmax(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var m = -3.402823e38;
    for (var i = lid; i < p.cols; i += WG) {
        m = max(m, x[base + i]);
    }
    let mx = reduce_max(lid, m);
    var s = 0.0;
    for (var i = lid; i < p.cols; i += WG) {
        let e = exp(x[base + i] - mx);
        x[base + i] = e;
        s += e;
    }
    let inv = 1.0 / reduce_sum(lid, s);
    for (var i = lid; i < p.cols; i += WG) {
        x[base + i] = x[base + i] * inv;
    }
}
