// The graded exercises, by id and kind ("python", "numeric" or "choice").
//
// This file is plain data so that the frontend's build script can `include!` it and fail a
// lesson that names an exercise the engine cannot grade; `grade::find` must resolve each id
// (a test checks it).
pub const EXERCISES: &[(&str, &str)] = &[
    ("bigram-nll", "python"),
    ("attention-head", "python"),
    ("uniform-loss", "numeric"),
    ("bpe-merge-step", "python"),
    ("bpe-encode", "python"),
    ("byte-level", "choice"),
    ("top-p", "python"),
    ("kv-step", "python"),
    ("int8-roundtrip", "python"),
    ("roofline", "python"),
    ("masked-attention", "python"),
    ("rope", "python"),
    ("layernorm", "python"),
    ("architecture-masks", "python"),
    ("job-estimate", "python"),
];
