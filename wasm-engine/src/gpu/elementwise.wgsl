// Element-wise kernels, 256 threads per workgroup; a 2-D grid of workgroups covers more
// elements than one dimension of dispatch allows.

struct Params {
    n: u32,
    // Length of the bias (the last dimension of x) for bias_add.
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

fn flat(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

// x[r, c] += y[c]
@compute @workgroup_size(256)
fn bias_add(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat(wg, nwg, lid);
    if (i < p.n) {
        x[i] = x[i] + y[i % p.cols];
    }
}

// x += y (the residual connection)
@compute @workgroup_size(256)
fn add(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat(wg, nwg, lid);
    if (i < p.n) {
        x[i] = x[i] + y[i];
    }
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7); WGSL has no erf.
fn erf(z: f32) -> f32 {
    let s = sign(z);
    let a = abs(z);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-a * a));
}

// The exact GELU of GPT-2 and BERT: x · Φ(x) = x/2 · (1 + erf(x/√2)).
@compute @workgroup_size(256)
fn gelu(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat(wg, nwg, lid);
    if (i < p.n) {
        let v = x[i];
        x[i] = 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
    }
}
