//! The Attention Workshop course site: course map, lesson pages with live widgets, graded
//! Python exercises. Client-side Leptos; the engine runs in a Web Worker (`worker/`), student
//! code in a Pyodide worker (`exercise/python.rs`).

pub mod app;
pub mod charts;
pub mod content;
pub mod exercise;
pub mod lesson;
pub mod pages;
pub mod runner;
pub mod storage;
pub mod widgets;
pub mod worker;
