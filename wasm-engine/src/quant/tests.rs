use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::prune::prune_magnitude;
use super::*;
use crate::checkpoint::{Checkpoint, expected_shapes};
use crate::model::gpt;
use crate::tokenizer::{CharTokenizer, Tokenizer};

const SCHEMES: [Scheme; 3] = [
    Scheme::Int8Symmetric,
    Scheme::Int8Asymmetric,
    Scheme::Int4 { group_size: 16 },
];

/// A checkpoint with seeded N(0, 0.3²)-ish uniform weights over an alphabet of `vocab` letters.
fn checkpoint(vocab: usize, seed: u64) -> Checkpoint {
    let text: String = (0..vocab as u8).map(|i| (b'a' + i) as char).collect();
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(&text).unwrap());
    let cfg = gpt::Config {
        vocab_size: vocab,
        block_size: 16,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        dropout: 0.0,
        bias: true,
        ..gpt_defaults()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut shapes: Vec<_> = expected_shapes(&cfg).unwrap().into_iter().collect();
    shapes.sort();
    let tensors: HashMap<String, Tensor> = shapes
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
            let t = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
            (name, t)
        })
        .collect();
    Checkpoint::new(cfg, tokenizer, 0, tensors)
}

fn gpt_defaults() -> gpt::Config {
    serde_json::from_value(serde_json::json!({
        "vocab_size": 1, "block_size": 1, "n_layer": 1, "n_head": 1, "n_embd": 1
    }))
    .unwrap()
}

#[test]
fn symmetric_int8_by_hand() {
    // max |x| = 2.54, so the scale is 2.54 / 127 = 0.02.
    let xs = [1.0, -2.54, 0.5, 0.0, 0.013];
    let (q, s) = quantize_symmetric_i8(&xs);
    assert!((s - 0.02).abs() < 1e-7);
    assert_eq!(q, vec![50, -127, 25, 0, 1]);
    let back = dequantize_symmetric_i8(&q, s);
    let max_err = xs
        .iter()
        .zip(&back)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    // 0.013 comes back as 0.02: the largest error, within half a step.
    assert!((max_err - 0.007).abs() < 1e-6, "{max_err}");
    assert!(max_err <= s / 2.0 + 1e-7);
    assert_eq!(
        quantize_symmetric_i8(&[0.0, 0.0]).0,
        vec![0, 0],
        "zeros stay zeros"
    );
}

#[test]
fn asymmetric_int8_by_hand() {
    // Range [-1, 3] onto [0, 255]: s = 4/255, z = round(1 / s) = round(63.75) = 64.
    let (q, s, z) = quantize_asymmetric_u8(&[-1.0, 0.0, 3.0]);
    assert!((s - 4.0 / 255.0).abs() < 1e-8);
    assert_eq!(z, 64);
    assert_eq!(q, vec![0, 64, 255]);
    let back = dequantize_asymmetric_u8(&q, s, z);
    assert_eq!(back[1], 0.0, "zero is exact");
    assert!((back[0] + 1.0).abs() <= s / 2.0 + 1e-6);
    assert!((back[2] - 3.0).abs() <= s / 2.0 + 1e-6);
    // A one-sided range uses all 256 levels where symmetric int8 would waste half of them.
    let pos: Vec<f32> = (0..=255).map(|i| i as f32 / 255.0).collect();
    let (q, s, z) = quantize_asymmetric_u8(&pos);
    assert_eq!((z, q[255]), (0, 255));
    let err = |back: Vec<f32>| {
        pos.iter()
            .zip(back)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    };
    let asym = err(dequantize_asymmetric_u8(&q, s, z));
    let (qs, ss) = quantize_symmetric_i8(&pos);
    let sym = err(dequantize_symmetric_i8(&qs, ss));
    assert!(asym < sym / 1.9, "asym {asym} vs sym {sym}");
}

#[test]
fn int4_groups_by_hand_and_packing() {
    // Group 1: max 0.7, s = 0.1, q = [7, -3]. Group 2: max 1.4, s = 0.2, q = [round(0.7), 7] = [1, 7].
    let (packed, scales) = quantize_int4(&[0.7, -0.3, 0.14, 1.4], 2).unwrap();
    assert!((scales[0] - 0.1).abs() < 1e-7 && (scales[1] - 0.2).abs() < 1e-7);
    // Low nibble first; -3 is 0b1101 in four-bit two's complement.
    assert_eq!(packed, vec![0xD7, 0x71]);
    let back = dequantize_int4(&packed, &scales, 4, 2).unwrap();
    let want = [0.7, -0.3, 0.2, 1.4];
    assert!(
        back.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{back:?}"
    );
    // An odd length pads the last byte; max |x| = 7 gives scale 1, so the values are exact.
    let (packed, scales) = quantize_int4(&[-7.0, 7.0, 1.0], 4).unwrap();
    assert_eq!((packed.len(), scales), (2, vec![1.0]));
    assert_eq!(
        dequantize_int4(&packed, &[1.0], 3, 4).unwrap(),
        vec![-7.0, 7.0, 1.0]
    );
    // The nibble -8 (0b1000) sign-extends back to -8.
    assert_eq!(unpack_nibbles(&pack_nibbles(&[-8, 3]), 2), vec![-8, 3]);
    assert!(quantize_int4(&[1.0], 3).is_err(), "odd group size");
}

#[test]
fn round_trip_error_is_at_most_half_a_step_per_row() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let values: Vec<f32> = (0..8 * 48).map(|_| rng.random_range(-3.0..3.0)).collect();
    let w = Tensor::from_vec(values.clone(), (8, 48), &Device::Cpu).unwrap();
    for scheme in SCHEMES {
        let q = QTensor::quantize(&w, scheme).unwrap();
        let back = q.dequantize_vec().unwrap();
        for (i, (a, b)) in values.iter().zip(&back).enumerate() {
            let step = match scheme {
                Scheme::Int4 { group_size } => q.scales[i / group_size],
                _ => q.scales[i / 48],
            };
            assert!((a - b).abs() <= step / 2.0 + 1e-6, "{scheme:?} at {i}");
        }
    }
}

#[test]
fn int8_matmul_matches_f32_within_a_percent() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (m, k, n) = (3, 64, 16);
    let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let wv: Vec<f32> = (0..n * k).map(|_| rng.random_range(-0.2..0.2)).collect();
    let w = Tensor::from_vec(wv.clone(), (n, k), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, Scheme::Int8Symmetric).unwrap();
    let got = matmul_i8(&x, m, k, &q).unwrap();
    let want: Vec<f32> = (0..m)
        .flat_map(|i| {
            let (x, wv) = (&x, &wv);
            (0..n).map(move |j| (0..k).map(|l| x[i * k + l] * wv[j * k + l]).sum())
        })
        .collect();
    let scale = want.iter().fold(0f32, |a, b| a.max(b.abs()));
    let max_err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    // Two int8 roundings of 1/254 relative each over 64 terms: well under 1% of the largest output.
    assert!(
        max_err < 0.01 * scale,
        "max error {max_err} vs largest output {scale}"
    );
    let asym = QTensor::quantize(&w, Scheme::Int8Asymmetric).unwrap();
    assert!(
        matmul_i8(&x, m, k, &asym)
            .unwrap_err()
            .to_string()
            .contains("int8-sym")
    );
    assert!(matmul_i8(&x, m, k + 1, &q).is_err(), "shape mismatch");
}

#[test]
fn quantized_checkpoints_save_load_and_shrink() {
    let ckpt = checkpoint(10, 1);
    let (_, f32_bytes) = ckpt.to_parts().unwrap();
    let mut sizes = Vec::new();
    for scheme in SCHEMES {
        let q = QuantizedCheckpoint::quantize(&ckpt, scheme).unwrap();
        let (config, weights) = q.to_parts().unwrap();
        let back = QuantizedCheckpoint::from_parts(&config, &weights).unwrap();
        assert_eq!(back.scheme, scheme);
        assert_eq!(back.quantized, q.quantized);
        assert_eq!(back.dense.len(), q.dense.len());
        // The loaded model computes the same logits as the one before saving.
        let idx = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
        let a = q
            .to_model(&Device::Cpu)
            .unwrap()
            .forward(&idx, None, false)
            .unwrap()
            .0;
        let b = back
            .to_model(&Device::Cpu)
            .unwrap()
            .forward(&idx, None, false)
            .unwrap()
            .0;
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{scheme:?}");
        sizes.push(weights.len());
    }
    // int8 is about a quarter of f32, int4 about an eighth (plus scales and the f32 rest).
    assert!(
        sizes[0] * 3 < f32_bytes.len(),
        "{sizes:?} vs {}",
        f32_bytes.len()
    );
    // This toy model's rows are 32 wide: groups of 16 cost 2 bits of scale per weight.
    assert!(sizes[2] < sizes[0] * 4 / 5, "{sizes:?}");
}

#[test]
fn corrupt_or_mismatched_quantized_checkpoints_are_clear_errors() {
    let ckpt = checkpoint(10, 2);
    let q = QuantizedCheckpoint::quantize(&ckpt, Scheme::Int8Symmetric).unwrap();
    let (config, weights) = q.to_parts().unwrap();
    let err = |c: &[u8], w: &[u8]| {
        QuantizedCheckpoint::from_parts(c, w)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&config, &weights[..weights.len() / 2]).contains("truncated or corrupt"));
    let (plain_config, plain) = ckpt.to_parts().unwrap();
    assert!(err(&plain_config, &plain).contains("not a quantized checkpoint"));
    // A config for another model: the tensors do not fit it.
    let other = checkpoint(12, 2);
    let (other_config, _) = other.to_parts().unwrap();
    let e = err(&other_config, &weights);
    assert!(e.contains("wte.weight") && e.contains("call for"), "{e}");
    // A scale that is not positive.
    let mut bad = q.clone();
    bad.quantized.get_mut("h.0.mlp.c_fc.weight").unwrap().scales[0] = -1.0;
    let (_, bad_weights) = bad.to_parts().unwrap();
    assert!(err(&config, &bad_weights).contains("finite and positive"));
    // A missing scale tensor.
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let st = SafeTensors::deserialize(&weights).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "ln_f.weight")
        .collect();
    let (_, header) = SafeTensors::read_metadata(&weights).unwrap();
    let stripped = safetensors::tensor::serialize(kept, header.metadata().clone()).unwrap();
    tensors.clear();
    assert!(err(&config, &stripped).contains("lack tensor 'ln_f.weight'"));
}

#[test]
fn int8_keeps_perplexity_and_int4_costs_a_little() {
    let ckpt = checkpoint(10, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let ids: Vec<u32> = (0..16 * 8 + 1).map(|_| rng.random_range(0..10)).collect();
    let base = perplexity(&ckpt.to_model(&Device::Cpu).unwrap(), &ids, 8).unwrap();
    let ppl = |scheme| {
        let q = QuantizedCheckpoint::quantize(&ckpt, scheme).unwrap();
        perplexity(&q.to_model(&Device::Cpu).unwrap(), &ids, 8).unwrap()
    };
    let int8 = ppl(Scheme::Int8Symmetric);
    let int4 = ppl(Scheme::Int4 { group_size: 16 });
    assert!((int8 - base).abs() / base < 0.01, "{int8} vs {base}");
    assert!(
        (int4 - base).abs() > (int8 - base).abs(),
        "{int4} {int8} {base}"
    );
    assert!(perplexity(&ckpt.to_model(&Device::Cpu).unwrap(), &ids[..10], 8).is_err());
}

#[test]
fn magnitude_pruning_zeroes_the_smallest_weights() {
    let ckpt = checkpoint(10, 4);
    let (pruned, overall) = prune_magnitude(&ckpt, 0.5).unwrap();
    let before = ckpt.tensors["h.0.mlp.c_fc.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let after = pruned.tensors["h.0.mlp.c_fc.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let zeros = after.iter().filter(|v| **v == 0.0).count();
    assert_eq!(zeros, before.len() / 2);
    // Every kept weight is at least as large as every pruned one.
    let kept_min = after
        .iter()
        .filter(|v| **v != 0.0)
        .fold(f32::MAX, |m, v| m.min(v.abs()));
    let pruned_max = before
        .iter()
        .zip(&after)
        .filter(|(_, a)| **a == 0.0)
        .fold(0f32, |m, (b, _)| m.max(b.abs()));
    assert!(pruned_max <= kept_min);
    assert_eq!(
        pruned.tensors["wte.weight"].to_vec2::<f32>().unwrap(),
        ckpt.tensors["wte.weight"].to_vec2::<f32>().unwrap()
    );
    assert!(overall > 0.3 && overall < 0.5, "{overall}");
    assert!(prune_magnitude(&ckpt, 1.5).is_err());
}

/// Lesson E3's table on the shipped model (`static/models/char-kjv`, trained on the first 90%
/// of `static/data/kjv.txt`): the widget computes the same figures in the browser.
#[test]
fn shipped_model_formats_and_pruning_on_the_validation_split() {
    use super::prune::prune_point;
    use crate::data::Dataset;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ckpt = Checkpoint::load(&root.join("static/models/char-kjv")).unwrap();
    let text = std::fs::read_to_string(root.join("static/data/kjv.txt")).unwrap();
    let data = Dataset::new(&text, ckpt.meta.tokenizer.clone(), 0.1).unwrap();
    let windows = 32;
    let report =
        |scheme| compare_format(&ckpt, scheme, &data.val, windows, "And God said", 40, 7).unwrap();
    let fp32 = report(None);
    let int8 = report(Some(Scheme::Int8Symmetric));
    let asym = report(Some(Scheme::Int8Asymmetric));
    let int4 = report(Some(Scheme::Int4 { group_size: 32 }));
    for r in [&fp32, &int8, &asym, &int4] {
        println!(
            "{:>9} {:>7} bytes  ppl {:.4}  {:?}",
            r.name, r.file_bytes, r.perplexity, r.sample
        );
    }
    // The fp32 file is the checkpoint as shipped.
    let shipped = std::fs::metadata(root.join("static/models/char-kjv/model.safetensors"))
        .unwrap()
        .len() as usize;
    assert_eq!(fp32.file_bytes, shipped);
    // Nearly every parameter is in a 2-D matrix: int8 is close to 4× smaller, int4 to 8×
    // less the scales (5 bits per weight in groups of 32).
    let ratio = |r: &FormatReport| fp32.file_bytes as f64 / r.file_bytes as f64;
    assert!(ratio(&int8) > 3.3 && ratio(&int8) < 4.0, "{}", ratio(&int8));
    assert!(asym.file_bytes > int8.file_bytes);
    assert!(ratio(&int4) > 5.0 && ratio(&int4) < 8.0, "{}", ratio(&int4));
    // A trained model's validation perplexity (val loss ≈ 1.9 nats → ≈ 6.7).
    assert!(fp32.perplexity > 4.0 && fp32.perplexity < 10.0);
    assert!((int8.perplexity / fp32.perplexity - 1.0).abs() < 0.01);
    assert!((asym.perplexity / fp32.perplexity - 1.0).abs() < 0.01);
    assert!(int4.perplexity > int8.perplexity.min(asym.perplexity));
    assert!(int4.perplexity / fp32.perplexity < 1.2);
    assert!(fp32.sample.starts_with("And God said") && fp32.sample.len() > 40);

    let curve: Vec<_> = [0.0, 0.5, 0.9]
        .iter()
        .map(|&s| prune_point(&ckpt, s, &data.val, windows).unwrap())
        .collect();
    println!("{curve:?}");
    assert_eq!(curve[0].perplexity, fp32.perplexity);
    assert!(curve[1].perplexity >= curve[0].perplexity);
    assert!(curve[2].perplexity > curve[1].perplexity);
    assert!(curve[2].zero_fraction > 0.5 && curve[2].zero_fraction < 0.9);
}
