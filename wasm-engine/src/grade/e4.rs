//! Exercise of lesson E4, GPU essentials: the roofline of one matrix multiplication. How many
//! FLOPs and bytes it moves at best, its arithmetic intensity, the speed the roofline allows
//! on a device, and so the least time it can take.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, Tolerance, arg, matches};
use crate::Result;

/// `roofline(m, n, k, bytes_per_value, peak_flops, bandwidth)` →
/// `[flops, bytes, intensity, attainable_flops, seconds]` for `C[m,n] = A[m,k] · B[k,n]`.
pub struct Roofline;

/// One multiplication on one device.
#[derive(Clone, Copy, Debug)]
struct Matmul {
    m: f64,
    n: f64,
    k: f64,
    bytes_per_value: f64,
    /// FLOP/s.
    peak: f64,
    /// Bytes/s between DRAM and the chip.
    bandwidth: f64,
}

/// The reference, with the classic mistakes as switches so hints can recognise them.
#[derive(Clone, Copy, Default)]
struct Variant {
    /// `m·n·k`: a multiply-add counted as one FLOP instead of two.
    one_flop_per_mac: bool,
    /// Reading A and B but not writing C.
    no_output: bool,
    /// Bits instead of bytes.
    bits: bool,
    /// `max(peak, I·bandwidth)`: above the roofline instead of under it.
    max_not_min: bool,
}

fn roofline(mm: Matmul, v: Variant) -> [f64; 5] {
    let Matmul {
        m,
        n,
        k,
        bytes_per_value,
        peak,
        bandwidth,
    } = mm;
    let flops = if v.one_flop_per_mac { 1.0 } else { 2.0 } * m * n * k;
    // At best each matrix crosses the memory bus once: tiling exists to get close to this.
    let values = m * k + k * n + if v.no_output { 0.0 } else { m * n };
    let bytes = values * bytes_per_value * if v.bits { 8.0 } else { 1.0 };
    let intensity = flops / bytes;
    let attainable = if v.max_not_min {
        peak.max(intensity * bandwidth)
    } else {
        peak.min(intensity * bandwidth)
    };
    [flops, bytes, intensity, attainable, flops / attainable]
}

const HINTS: &[(Variant, &str)] = &[
    (
        Variant {
            one_flop_per_mac: true,
            no_output: false,
            bits: false,
            max_not_min: false,
        },
        "each of the m·n outputs is a sum of k products: k multiplies and k adds, so a matmul is 2·m·n·k FLOPs",
    ),
    (
        Variant {
            one_flop_per_mac: false,
            no_output: true,
            bits: false,
            max_not_min: false,
        },
        "the result C (m·n values) has to be written back to memory too: bytes = (m·k + k·n + m·n) × bytes per value",
    ),
    (
        Variant {
            one_flop_per_mac: false,
            no_output: false,
            bits: true,
            max_not_min: false,
        },
        "bytes_per_value is already in bytes (4 for fp32, 2 for fp16): no factor of 8",
    ),
    (
        Variant {
            one_flop_per_mac: false,
            no_output: false,
            bits: false,
            max_not_min: true,
        },
        "the roofline is a ceiling: attainable = min(peak, intensity × bandwidth), whichever limit is hit first",
    ),
];

fn case_json(name: &str, mm: Matmul) -> Case {
    Case {
        name: name.into(),
        args: vec![
            json!(mm.m as u64),
            json!(mm.n as u64),
            json!(mm.k as u64),
            json!(mm.bytes_per_value as u64),
            json!(mm.peak),
            json!(mm.bandwidth),
        ],
    }
}

fn matmul_of(case: &Case) -> Result<Matmul> {
    Ok(Matmul {
        m: arg::<f64>(case, 0)?,
        n: arg::<f64>(case, 1)?,
        k: arg::<f64>(case, 2)?,
        bytes_per_value: arg::<f64>(case, 3)?,
        peak: arg::<f64>(case, 4)?,
        bandwidth: arg::<f64>(case, 5)?,
    })
}

/// An H100 SXM's datasheet figures: FP32 without tensor cores, and HBM3.
const H100_FP32: f64 = 67e12;
const H100_FP16_TENSOR: f64 = 989e12;
const H100_BANDWIDTH: f64 = 3.35e12;

impl Grader for Roofline {
    fn id(&self) -> &'static str {
        "roofline"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "roofline".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let h100 = |m, n, k, bytes_per_value, peak| Matmul {
            m,
            n,
            k,
            bytes_per_value,
            peak,
            bandwidth: H100_BANDWIDTH,
        };
        let mut cases = vec![
            case_json(
                "the lesson's example: 2048² in fp32 on an H100",
                h100(2048.0, 2048.0, 2048.0, 4.0, H100_FP32),
            ),
            // One token of generation: a matrix-vector product, deep under the ridge.
            case_json(
                "a matrix-vector product (one generated token), fp16",
                h100(1.0, 4096.0, 4096.0, 2.0, H100_FP16_TENSOR),
            ),
            case_json(
                "a small 64 × 64 matmul, fp32",
                h100(64.0, 64.0, 64.0, 4.0, H100_FP32),
            ),
            case_json(
                "a batch of 512 prompts' tokens through an MLP, fp16",
                h100(512.0, 16384.0, 4096.0, 2.0, H100_FP16_TENSOR),
            ),
            case_json(
                "a laptop CPU, int8",
                Matmul {
                    m: 256.0,
                    n: 1024.0,
                    k: 1024.0,
                    bytes_per_value: 1.0,
                    peak: 4e11,
                    bandwidth: 5e10,
                },
            ),
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for i in 0..4 {
            let pow = |rng: &mut ChaCha8Rng| f64::from(1u32 << rng.random_range(0..13));
            let mm = Matmul {
                m: pow(&mut rng),
                n: pow(&mut rng),
                k: pow(&mut rng),
                bytes_per_value: [1.0, 2.0, 4.0][rng.random_range(0..3)],
                peak: rng.random_range(1..200) as f64 * 1e12,
                bandwidth: rng.random_range(1..40) as f64 * 1e11,
            };
            cases.push(case_json(&format!("random device {}", i + 1), mm));
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        Ok(json!(roofline(matmul_of(case)?, Variant::default())))
    }

    fn tolerance(&self) -> Tolerance {
        Tolerance {
            abs: 1e-9,
            rel: 1e-6,
        }
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let mm = matmul_of(case).ok()?;
        let Value::Array(items) = got else {
            return None;
        };
        // A mistake shows in the first number it changes; later numbers inherit it.
        for (variant, text) in HINTS {
            let wrong = roofline(mm, *variant);
            let right = roofline(mm, Variant::default());
            let Some(first) = (0..5).find(|&i| wrong[i] != right[i]) else {
                continue;
            };
            if items.len() == 5 && matches(&items[first], &json!(wrong[first]), self.tolerance()) {
                return Some((*text).into());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Outcome, grade};

    fn answers(v: Variant) -> Vec<Outcome> {
        Roofline
            .cases()
            .iter()
            .map(|c| Outcome::Returned(json!(roofline(matmul_of(c).unwrap(), v))))
            .collect()
    }

    #[test]
    fn the_lessons_example_is_compute_bound_and_gemv_is_memory_bound() {
        let [flops, bytes, intensity, attainable, seconds] = roofline(
            Matmul {
                m: 2048.0,
                n: 2048.0,
                k: 2048.0,
                bytes_per_value: 4.0,
                peak: H100_FP32,
                bandwidth: H100_BANDWIDTH,
            },
            Variant::default(),
        );
        assert_eq!(flops, 17_179_869_184.0);
        assert_eq!(bytes, 50_331_648.0);
        assert!((intensity - 341.33).abs() < 0.01, "{intensity}");
        assert_eq!(attainable, H100_FP32);
        assert!((seconds * 1e6 - 256.4).abs() < 0.1, "{seconds}");
        let gemv = roofline(
            Matmul {
                m: 1.0,
                n: 4096.0,
                k: 4096.0,
                bytes_per_value: 2.0,
                peak: H100_FP16_TENSOR,
                bandwidth: H100_BANDWIDTH,
            },
            Variant::default(),
        );
        assert!(gemv[2] < 1.0, "one FLOP per byte at most: {}", gemv[2]);
        assert!((gemv[3] - gemv[2] * H100_BANDWIDTH).abs() < 1.0);
    }

    #[test]
    fn the_reference_passes_and_each_mistake_fails_with_its_hint() {
        let right = grade("roofline", &answers(Variant::default())).unwrap();
        assert!(right.passed, "{right:?}");
        for (variant, text) in HINTS {
            let verdict = grade("roofline", &answers(*variant)).unwrap();
            assert!(!verdict.passed);
            let failure = verdict.failure.unwrap();
            assert_eq!(failure.hint.as_deref(), Some(*text), "{failure:?}");
        }
    }
}
