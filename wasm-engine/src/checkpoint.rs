//! Checkpoints: a model's weights as safetensors plus a JSON file with everything needed to
//! use them (model config, tokenizer, step). On disk a checkpoint is a folder holding
//! `config.json` and `model.safetensors`; over the wire it is the same two files, so a
//! checkpoint written by the runner loads in the browser and the other way round.
//!
//! `export_hf_gpt2` writes the layout of Hugging Face's GPT-2 instead, which
//! `transformers.GPT2LMHeadModel.from_pretrained` loads.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::gpt::{self, Gpt};
use crate::tokenizer::Tokenizer;
use crate::train::TrainConfig;
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Written only by resumable training state (`Trainer::save_state`).
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

const FORMAT: &str = "attention-workshop/gpt";

/// The contents of `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always "attention-workshop/gpt"; tells our checkpoints from other JSON files.
    pub format: String,
    pub model: gpt::Config,
    pub tokenizer: Tokenizer,
    /// Optimizer steps taken when the checkpoint was written.
    pub step: usize,
    /// The run's training settings, when it came from a training run.
    #[serde(default)]
    pub train: Option<TrainConfig>,
    /// Validation loss at the last evaluation before the checkpoint, if any.
    #[serde(default)]
    pub val_loss: Option<f32>,
}

/// A model's weights and the metadata to use them.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    pub fn new(
        model: gpt::Config,
        tokenizer: Tokenizer,
        step: usize,
        tensors: HashMap<String, Tensor>,
    ) -> Self {
        Self {
            meta: CheckpointMeta {
                format: FORMAT.into(),
                model,
                tokenizer,
                step,
                train: None,
                val_loss: None,
            },
            tensors,
        }
    }

    /// Reads a checkpoint from the bytes of its two files, checking that they agree.
    pub fn from_parts(config_json: &[u8], safetensors: &[u8]) -> Result<Self> {
        let meta: CheckpointMeta = serde_json::from_slice(config_json).map_err(|e| {
            Error::Checkpoint(format!(
                "{CONFIG_FILE} is not a valid checkpoint config: {e}"
            ))
        })?;
        if meta.format != FORMAT {
            return Err(Error::Checkpoint(format!(
                "{CONFIG_FILE} has format '{}', expected '{FORMAT}'",
                meta.format
            )));
        }
        meta.model
            .validate()
            .map_err(|e| Error::Checkpoint(format!("{CONFIG_FILE}: {e}")))?;
        if meta.tokenizer.vocab_size() != meta.model.vocab_size {
            return Err(Error::Checkpoint(format!(
                "the tokenizer has {} tokens but the model's vocab_size is {}",
                meta.tokenizer.vocab_size(),
                meta.model.vocab_size
            )));
        }
        let tensors = read_safetensors(safetensors, WEIGHTS_FILE)?;
        let checkpoint = Self { meta, tensors };
        checkpoint.check_weights()?;
        Ok(checkpoint)
    }

    /// The bytes of `config.json` and `model.safetensors`.
    pub fn to_parts(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let config = serde_json::to_vec_pretty(&self.meta)?;
        let weights = write_safetensors(&self.tensors, None)?;
        Ok((config, weights))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let (config, weights) = self.to_parts()?;
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(CONFIG_FILE), config)?;
        std::fs::write(dir.join(WEIGHTS_FILE), weights)?;
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                Error::Checkpoint(format!("cannot read {}: {e}", dir.join(name).display()))
            })
        };
        Self::from_parts(&read(CONFIG_FILE)?, &read(WEIGHTS_FILE)?)
    }

    /// Every tensor the config calls for is present with the right shape, and nothing else.
    fn check_weights(&self) -> Result<()> {
        let expected = expected_shapes(&self.meta.model)?;
        let mut names: Vec<&String> = expected.keys().collect();
        names.sort(); // report the same first problem every time
        for name in names {
            let shape = &expected[name];
            match self.tensors.get(name) {
                None => {
                    return Err(Error::Checkpoint(format!(
                        "{WEIGHTS_FILE} lacks tensor '{name}' that the config calls for"
                    )));
                }
                Some(t) if t.dims() != shape.as_slice() => {
                    return Err(Error::Checkpoint(format!(
                        "tensor '{name}' has shape {:?} but the config implies {:?}",
                        t.dims(),
                        shape
                    )));
                }
                Some(_) => {}
            }
        }
        let mut extra: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        extra.sort();
        if let Some(extra) = extra.first() {
            return Err(Error::Checkpoint(format!(
                "{WEIGHTS_FILE} has tensor '{extra}' that the config does not call for"
            )));
        }
        Ok(())
    }

    /// Builds the model on `device`.
    pub fn to_model(&self, device: &Device) -> Result<Gpt> {
        let tensors = self
            .tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.to_device(device)?.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        Gpt::new(&self.meta.model, vb)
    }

    /// Writes Hugging Face's GPT-2 layout (`config.json` + `model.safetensors` with GPT-2
    /// tensor names) into `dir`. GPT-2 stores linear weights as `Conv1D`, `(in, out)`, so
    /// ours are transposed; it always has biases, so missing ones are written as zeros.
    pub fn export_hf_gpt2(&self, dir: &Path) -> Result<()> {
        let cfg = &self.meta.model;
        if !cfg.is_gpt2() {
            return Err(Error::Checkpoint(format!(
                "cannot export to hugging face gpt-2: this model uses position {:?}, norm {:?}, ffn {:?}, norm_placement {:?}, residual {}; gpt-2 needs learned positions, layernorm, gelu, pre-norm and residuals",
                cfg.position, cfg.norm, cfg.ffn, cfg.norm_placement, cfg.residual
            ).to_lowercase()));
        }
        let mut out = HashMap::new();
        for (name, shape) in expected_shapes(&gpt::Config {
            bias: true,
            ..cfg.clone()
        })? {
            let tensor = match self.tensors.get(&name) {
                Some(t) => t.clone(),
                None => Tensor::zeros(shape.as_slice(), DType::F32, &Device::Cpu)?,
            };
            let is_conv1d = name.contains(".attn.") || name.contains(".mlp.");
            let tensor = if is_conv1d && tensor.rank() == 2 {
                tensor.t()?.contiguous()?
            } else {
                tensor
            };
            out.insert(format!("transformer.{name}"), tensor);
        }
        let config = serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": cfg.vocab_size,
            "n_positions": cfg.block_size,
            "n_ctx": cfg.block_size,
            "n_embd": cfg.n_embd,
            "n_layer": cfg.n_layer,
            "n_head": cfg.n_head,
            "n_inner": null,
            // "gelu" is the exact erf GELU in transformers' ACT2FN, as in our model;
            // GPT-2's own "gelu_new" is the tanh approximation.
            "activation_function": "gelu",
            "resid_pdrop": cfg.dropout,
            "embd_pdrop": cfg.dropout,
            "attn_pdrop": cfg.dropout,
            "layer_norm_epsilon": 1e-5,
            "initializer_range": 0.02,
            "tie_word_embeddings": true,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "torch_dtype": "float32",
        });
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
        // transformers refuses safetensors files without `format: pt` metadata.
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        std::fs::write(
            dir.join("model.safetensors"),
            write_safetensors(&out, Some(metadata))?,
        )?;
        Ok(())
    }
}

/// Tensor names and shapes of a GPT with this config, in our layout.
pub fn expected_shapes(cfg: &gpt::Config) -> Result<HashMap<String, Vec<usize>>> {
    cfg.validate()?;
    let (c, hidden) = (cfg.n_embd, cfg.ffn_hidden());
    let mut shapes = HashMap::from([("wte.weight".to_string(), vec![cfg.vocab_size, c])]);
    // Only learned positions are weights; sinusoidal, RoPE and ALiBi are computed.
    if cfg.position == gpt::PositionEncoding::Learned {
        shapes.insert("wpe.weight".to_string(), vec![cfg.block_size, c]);
    }
    let mut add = |prefix: String, out_dim: usize, in_dim: Option<usize>| {
        // Norms have a bias only as LayerNorm with `bias`; linear layers whenever `bias`.
        let bias = match in_dim {
            Some(in_dim) => {
                shapes.insert(format!("{prefix}.weight"), vec![out_dim, in_dim]);
                cfg.bias
            }
            None => {
                shapes.insert(format!("{prefix}.weight"), vec![out_dim]);
                cfg.norm_bias()
            }
        };
        if bias {
            shapes.insert(format!("{prefix}.bias"), vec![out_dim]);
        }
    };
    for i in 0..cfg.n_layer {
        add(format!("h.{i}.ln_1"), c, None);
        add(format!("h.{i}.attn.c_attn"), 3 * c, Some(c));
        add(format!("h.{i}.attn.c_proj"), c, Some(c));
        add(format!("h.{i}.ln_2"), c, None);
        add(format!("h.{i}.mlp.c_fc"), hidden, Some(c));
        if cfg.ffn == gpt::Ffn::Swiglu {
            add(format!("h.{i}.mlp.c_gate"), hidden, Some(c));
        }
        add(format!("h.{i}.mlp.c_proj"), c, Some(hidden));
    }
    add("ln_f".to_string(), c, None);
    Ok(shapes)
}

/// Parses safetensors bytes on the CPU; `what` names the file in errors.
pub(crate) fn read_safetensors(bytes: &[u8], what: &str) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| Error::Checkpoint(format!("{what} is truncated or corrupt: {e}")))
}

pub(crate) fn write_safetensors(
    tensors: &HashMap<String, Tensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let cpu = tensors
        .iter()
        .map(|(k, v)| Ok((k.as_str(), v.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(cpu, metadata)
        .map_err(|e| Error::Checkpoint(format!("cannot serialize tensors: {e}")))
}

/// The `config.json` of a model other than the GPT (lesson C4's BERT and T5): the same two
/// files as a GPT checkpoint, with the architecture in `format`
/// (`"attention-workshop/bert"`, `"attention-workshop/t5"`) and its own `Config` in `model`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArchMeta<C> {
    pub format: String,
    pub model: C,
    pub tokenizer: Tokenizer,
    pub step: usize,
    #[serde(default)]
    pub train: Option<TrainConfig>,
    /// Figures measured when it was written (e.g. `mlm_accuracy`, `exact_match`).
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f32>,
}

/// Weights and metadata of a BERT or T5 checkpoint.
#[derive(Clone, Debug)]
pub struct ArchCheckpoint<C> {
    pub meta: ArchMeta<C>,
    pub tensors: HashMap<String, Tensor>,
}

impl<C: Serialize + serde::de::DeserializeOwned> ArchCheckpoint<C> {
    /// Reads the two files, checking that `config.json` is of `format`.
    pub fn from_parts(config_json: &[u8], safetensors: &[u8], format: &str) -> Result<Self> {
        let meta: ArchMeta<C> = serde_json::from_slice(config_json).map_err(|e| {
            Error::Checkpoint(format!(
                "{CONFIG_FILE} is not a valid {format} checkpoint config: {e}"
            ))
        })?;
        if meta.format != format {
            return Err(Error::Checkpoint(format!(
                "{CONFIG_FILE} has format '{}', expected '{format}'",
                meta.format
            )));
        }
        let tensors = read_safetensors(safetensors, WEIGHTS_FILE)?;
        Ok(Self { meta, tensors })
    }

    pub fn to_parts(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((
            serde_json::to_vec_pretty(&self.meta)?,
            write_safetensors(&self.tensors, None)?,
        ))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let (config, weights) = self.to_parts()?;
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(CONFIG_FILE), config)?;
        std::fs::write(dir.join(WEIGHTS_FILE), weights)?;
        Ok(())
    }

    pub fn load(dir: &Path, format: &str) -> Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                Error::Checkpoint(format!("cannot read {}: {e}", dir.join(name).display()))
            })
        };
        Self::from_parts(&read(CONFIG_FILE)?, &read(WEIGHTS_FILE)?, format)
    }

    /// A `VarBuilder` over the weights on `device`; building the model from it fails, naming
    /// the tensor, when one is missing or has the wrong shape.
    pub fn var_builder(&self, device: &Device) -> Result<VarBuilder<'static>> {
        let tensors = self
            .tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.to_device(device)?.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
    }
}
