//! T5 (lesson C4): forward values, gradients against finite differences, the three masks,
//! causality of the decoder, independence of the encoder from the decoder, padding, greedy
//! decoding and a few training steps.

use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use engine::model::t5::{self, Config, EOS, PAD, Seq2SeqBatch, T5};
use engine::train::TrainConfig;
use engine::train::stepper::{MicroLoss, Stepper};

mod common;

use common::{check_gradients, seed_weights};

fn tiny_config() -> Config {
    Config {
        vocab_size: 7,
        n_positions: 6,
        d_model: 8,
        d_ff: 12,
        num_layers: 1,
        num_decoder_layers: 2,
        num_heads: 2,
    }
}

fn seeded(cfg: &Config, dtype: DType) -> (T5, Vec<(String, candle_core::Var)>) {
    let varmap = VarMap::new();
    let model = T5::new(cfg, VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu)).unwrap();
    let vars = seed_weights(&varmap, 7, 0.5, dtype);
    (model, vars)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(D::Minus1)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn batch() -> Seq2SeqBatch {
    Seq2SeqBatch::new(&[(vec![2, 3, 4], vec![5, 6]), (vec![6], vec![2, 3, 4])]).unwrap()
}

#[test]
fn a_batch_is_padded_shifted_and_ends_with_eos() {
    let b = batch();
    assert_eq!((b.src_len, b.tgt_len), (4, 4));
    assert_eq!(b.src, [2, 3, 4, EOS, 6, EOS, PAD, PAD]);
    assert_eq!(b.tgt_in, [PAD, 5, 6, PAD, PAD, 2, 3, 4]);
    assert_eq!(b.tgt_out, [5, 6, EOS, PAD, 2, 3, 4, EOS]);
    assert_eq!(b.src_padding[1], [false, false, true, true]);
    assert_eq!(b.tgt_padding[0], [false, false, false, true]);
}

#[test]
fn the_three_masks_by_hand() {
    let (t, f) = (true, false);
    assert_eq!(
        t5::encoder_mask(&[f, f, t]),
        vec![vec![t, t, f], vec![t, t, f], vec![t, t, f]]
    );
    assert_eq!(
        t5::decoder_mask(&[f, f, f, t]),
        vec![
            vec![t, f, f, f],
            vec![t, t, f, f],
            vec![t, t, t, f],
            vec![t, t, t, f]
        ]
    );
    assert_eq!(t5::cross_mask(2, &[f, t]), vec![vec![t, f], vec![t, f]]);
}

#[test]
fn shapes_and_parameter_count() {
    let cfg = tiny_config();
    let (model, vars) = seeded(&cfg, DType::F32);
    assert_eq!(model.forward(&batch()).unwrap().dims(), &[2, 4, 7]);
    let counted: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    assert_eq!(cfg.n_params(), counted);
    let out = model.greedy(&[2, 3], 4).unwrap();
    assert!(out.len() <= 4 && !out.contains(&EOS), "{out:?}");
}

#[test]
fn with_zero_weights_every_logit_is_zero_and_the_loss_is_ln_vocab() {
    // All weights 0: RMSNorm of a zero vector is 0, so the head sees 0 and every logit is 0,
    // a uniform distribution over the 7 tokens: cross-entropy ln 7.
    let cfg = tiny_config();
    let varmap = VarMap::new();
    let model = T5::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    for var in varmap.all_vars() {
        var.set(&var.zeros_like().unwrap()).unwrap();
    }
    let logits = model.forward(&batch()).unwrap();
    assert_eq!(
        logits
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    let (loss, _) = model.loss(&batch()).unwrap();
    assert!((loss.to_scalar::<f32>().unwrap() - 7f32.ln()).abs() < 1e-6);
}

#[test]
fn gradients_match_finite_differences() {
    let (model, vars) = seeded(&tiny_config(), DType::F64);
    let b = batch();
    let checked = check_gradients(&vars, || model.loss(&b).unwrap().0);
    assert_eq!(checked, 3 * vars.len());
}

#[test]
fn the_decoder_is_causal_and_the_encoder_bidirectional() {
    let (model, _) = seeded(&tiny_config(), DType::F32);
    let dev = Device::Cpu;
    let no_pad = |n: usize| vec![vec![false; n]];
    let src = Tensor::new(&[[2u32, 3, 4, EOS]], &dev).unwrap();
    let enc = model.encode(&src, &no_pad(4)).unwrap();
    let decode = |tgt: &[u32]| {
        let tgt = Tensor::new(tgt, &dev).unwrap().unsqueeze(0).unwrap();
        model.decode(&tgt, &enc, &no_pad(4), &no_pad(4)).unwrap()
    };
    let a = decode(&[PAD, 5, 6, 2]);
    let b = decode(&[PAD, 5, 4, 2]); // position 2 changed
    // Positions 0 and 1 cannot see position 2; positions 2 and 3 can.
    assert_eq!(
        max_abs_diff(&a.i((0, 0..2)).unwrap(), &b.i((0, 0..2)).unwrap()),
        0.0
    );
    assert!(max_abs_diff(&a.i((0, 2..4)).unwrap(), &b.i((0, 2..4)).unwrap()) > 1e-4);
    // The encoder's first position sees its last one.
    let src2 = Tensor::new(&[[2u32, 3, 5, EOS]], &dev).unwrap();
    let enc2 = model.encode(&src2, &no_pad(4)).unwrap();
    assert!(max_abs_diff(&enc.i((0, 0)).unwrap(), &enc2.i((0, 0)).unwrap()) > 1e-4);
    // Cross-attention is not causal: the decoder's first position reads the whole source.
    let tgt = Tensor::new(&[[PAD, 5, 6, 2]], &dev).unwrap();
    let c = model.decode(&tgt, &enc2, &no_pad(4), &no_pad(4)).unwrap();
    assert!(max_abs_diff(&a.i((0, 0)).unwrap(), &c.i((0, 0)).unwrap()) > 1e-4);
}

#[test]
fn the_encoder_output_does_not_depend_on_the_decoder_input() {
    // Two batches with the same sources and different targets: the gradient of the encoder's
    // output with respect to the decoder's input is zero, so its value is the same, and the
    // gradient of a loss on the encoder output alone reaches no decoder weight.
    let (model, vars) = seeded(&tiny_config(), DType::F32);
    let a = Seq2SeqBatch::new(&[(vec![2, 3], vec![4, 5, 6])]).unwrap();
    let b = Seq2SeqBatch::new(&[(vec![2, 3], vec![6, 2, 2])]).unwrap();
    let enc = |batch: &Seq2SeqBatch| {
        let (src, _, _) = batch.tensors(&Device::Cpu).unwrap();
        model.encode(&src, &batch.src_padding).unwrap()
    };
    assert_eq!(max_abs_diff(&enc(&a), &enc(&b)), 0.0);
    let grads = enc(&a)
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in &vars {
        let reached = grads.get(var).is_some();
        if name.starts_with("decoder.") {
            assert!(!reached, "{name} got a gradient from the encoder's output");
        }
    }
    assert!(
        vars.iter()
            .any(|(n, v)| n.starts_with("encoder.") && grads.get(v).is_some())
    );
}

#[test]
fn source_padding_changes_nothing() {
    let (model, _) = seeded(&tiny_config(), DType::F32);
    let short = Seq2SeqBatch::new(&[(vec![2, 3], vec![4])]).unwrap();
    // In a batch with a longer source, the short one is padded to 4.
    let padded = Seq2SeqBatch::new(&[(vec![2, 3], vec![4]), (vec![5, 5, 5], vec![4])]).unwrap();
    let a = model.forward(&short).unwrap();
    let b = model.forward(&padded).unwrap();
    assert!(max_abs_diff(&a.i(0).unwrap(), &b.i(0).unwrap()) < 1e-6);
}

#[test]
fn a_few_steps_teach_it_to_reverse_two_tokens() {
    let cfg = Config {
        vocab_size: 6,
        n_positions: 4,
        d_model: 16,
        d_ff: 32,
        num_layers: 1,
        num_decoder_layers: 1,
        num_heads: 2,
    };
    let varmap = VarMap::new();
    let model = T5::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let train = TrainConfig {
        max_steps: 150,
        learning_rate: 1e-2,
        warmup_steps: 10,
        weight_decay: 0.0,
        ..TrainConfig::default()
    };
    let mut stepper = Stepper::new(&varmap, train).unwrap();
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = (2..6)
        .flat_map(|a| (2..6).map(move |b| (vec![a, b], vec![b, a])))
        .collect();
    let batch = Seq2SeqBatch::new(&pairs).unwrap();
    while !stepper.is_done() {
        stepper
            .step(|_| {
                let (loss, _) = model.loss(&batch)?;
                Ok(MicroLoss { loss, tokens: 48 })
            })
            .unwrap();
    }
    for (src, tgt) in &pairs {
        assert_eq!(&model.greedy(src, 3).unwrap(), tgt, "reversing {src:?}");
    }
}
