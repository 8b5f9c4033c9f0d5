//! Model architectures, one file each, written to read like their papers.

pub mod attention;
pub mod bert;
pub mod gpt;
pub mod position;
pub mod t5;
