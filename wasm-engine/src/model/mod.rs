//! Model architectures, one file each, written to read like their papers.

pub mod attention;
pub mod gpt;
pub mod position;
