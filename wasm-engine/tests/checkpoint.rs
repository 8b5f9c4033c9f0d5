//! Checkpoints: round trips, corrupt and mismatched files, and the Hugging Face GPT-2 export.

use candle_core::{Device, Tensor};
use engine::Error;
use engine::checkpoint::Checkpoint;
use engine::data::Dataset;
use engine::model::gpt::Config;
use engine::tokenizer::{CharTokenizer, Tokenizer};
use engine::train::{TrainConfig, Trainer};

const TEXT: &str = "In the beginning God created the heaven and the earth. And the earth was without \
    form, and void; and darkness was upon the face of the deep.";

fn trained() -> Trainer {
    let tokenizer = Tokenizer::from(CharTokenizer::from_text(TEXT).unwrap());
    let vocab_size = tokenizer.vocab_size();
    let data = Dataset::new(TEXT, tokenizer, 0.3).unwrap();
    let model = Config {
        vocab_size,
        block_size: 8,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    };
    let train = TrainConfig {
        batch_size: 4,
        max_steps: 3,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, train, data, &Device::Cpu).unwrap();
    for _ in 0..3 {
        trainer.step().unwrap();
    }
    trainer
}

fn logits(checkpoint: &Checkpoint) -> Vec<f32> {
    let model = checkpoint.to_model(&Device::Cpu).unwrap();
    let idx = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).unwrap();
    model
        .forward(&idx, None, false)
        .unwrap()
        .0
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn a_checkpoint_round_trips_through_bytes_and_disk() {
    let checkpoint = trained().checkpoint();
    assert_eq!(checkpoint.meta.step, 3);
    let (config, weights) = checkpoint.to_parts().unwrap();
    let back = Checkpoint::from_parts(&config, &weights).unwrap();
    assert_eq!(logits(&checkpoint), logits(&back));
    assert_eq!(back.meta.model, checkpoint.meta.model);
    assert_eq!(
        back.meta.tokenizer.encode("the earth").unwrap(),
        checkpoint.meta.tokenizer.encode("the earth").unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    checkpoint.save(dir.path()).unwrap();
    assert_eq!(
        logits(&Checkpoint::load(dir.path()).unwrap()),
        logits(&checkpoint)
    );
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_clear_errors() {
    let checkpoint = trained().checkpoint();
    let (config, weights) = checkpoint.to_parts().unwrap();

    let truncated = Checkpoint::from_parts(&config, &weights[..weights.len() / 2]).unwrap_err();
    assert!(matches!(truncated, Error::Checkpoint(_)));
    assert!(
        truncated.to_string().contains("truncated or corrupt"),
        "{truncated}"
    );

    let garbage = Checkpoint::from_parts(b"{\"format\": 3", &weights).unwrap_err();
    assert!(
        garbage
            .to_string()
            .contains("config.json is not a valid checkpoint config"),
        "{garbage}"
    );

    // The config says 32 wide, the weights are 16 wide.
    let mut meta: serde_json::Value = serde_json::from_slice(&config).unwrap();
    meta["model"]["n_embd"] = 32.into();
    let wider = serde_json::to_vec(&meta).unwrap();
    let err = Checkpoint::from_parts(&wider, &weights).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("h.0.attn.c_attn.bias' has shape [48] but the config implies [96]"),
        "{msg}"
    );

    // One layer fewer than the weights hold.
    meta["model"]["n_embd"] = 16.into();
    meta["model"]["n_layer"] = 1.into();
    let err = Checkpoint::from_parts(&serde_json::to_vec(&meta).unwrap(), &weights).unwrap_err();
    assert!(
        err.to_string()
            .contains("that the config does not call for"),
        "{err}"
    );

    // A config that cannot describe a model at all.
    meta["model"]["n_layer"] = 2.into();
    meta["model"]["n_head"] = 0.into();
    let err = Checkpoint::from_parts(&serde_json::to_vec(&meta).unwrap(), &weights).unwrap_err();
    assert!(err.to_string().contains("n_head"), "{err}");

    let missing = Checkpoint::load(std::path::Path::new("/nonexistent/checkpoint")).unwrap_err();
    assert!(matches!(missing, Error::Checkpoint(_)), "{missing}");
}

#[test]
fn hf_export_has_gpt2_names_and_conv1d_layout() {
    let checkpoint = trained().checkpoint();
    let dir = tempfile::tempdir().unwrap();
    checkpoint.export_hf_gpt2(dir.path()).unwrap();

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "gpt2");
    assert_eq!(config["n_positions"], 8);
    assert_eq!(config["activation_function"], "gelu");

    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(header.metadata().as_ref().unwrap()["format"], "pt");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    let mut expected = vec![
        "transformer.wte.weight".to_string(),
        "transformer.wpe.weight".to_string(),
        "transformer.ln_f.weight".to_string(),
        "transformer.ln_f.bias".to_string(),
    ];
    for i in 0..2 {
        for part in [
            "ln_1",
            "attn.c_attn",
            "attn.c_proj",
            "ln_2",
            "mlp.c_fc",
            "mlp.c_proj",
        ] {
            for p in ["weight", "bias"] {
                expected.push(format!("transformer.h.{i}.{part}.{p}"));
            }
        }
    }
    expected.sort();
    assert_eq!(names, expected.iter().collect::<Vec<_>>());
    // Conv1D stores (in, out): c_attn is (16, 48), c_fc (16, 64), mlp.c_proj (64, 16).
    assert_eq!(
        st.tensor("transformer.h.0.attn.c_attn.weight")
            .unwrap()
            .shape(),
        &[16, 48]
    );
    assert_eq!(
        st.tensor("transformer.h.1.mlp.c_fc.weight")
            .unwrap()
            .shape(),
        &[16, 64]
    );
    assert_eq!(
        st.tensor("transformer.h.1.mlp.c_proj.weight")
            .unwrap()
            .shape(),
        &[64, 16]
    );
}

/// The real check: `transformers.GPT2LMHeadModel.from_pretrained` loads the export and gives
/// our logits. Runs where Python has torch and transformers (`cargo xtask bench` installs
/// them); elsewhere it says why it did not run.
#[test]
fn hf_export_loads_in_transformers_with_the_same_logits() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import torch, transformers"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        eprintln!("skipped: python3 lacks torch/transformers (pip install torch transformers)");
        return;
    }
    let checkpoint = trained().checkpoint();
    let dir = tempfile::tempdir().unwrap();
    checkpoint.export_hf_gpt2(dir.path()).unwrap();
    let ours = logits(&checkpoint);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hf_gpt2_logits.py");
    let out = std::process::Command::new("python3")
        .args([script, dir.path().to_str().unwrap(), "1,2,3,4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    let max = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("max |ours - transformers| = {max:e}");
    assert!(max < 1e-4, "logits differ by up to {max}");
}
