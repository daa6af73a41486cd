//! Loading models: HF directories, GGUF files, and the pinned pretrained models fetched on first
//! use (`pretrained`). `gguf_header` reads GGUF headers with checked sizes; `memory` refuses a
//! configuration whose parameters cannot fit before anything is allocated.

pub mod gguf;
pub mod gguf_header;
pub mod hf;
pub mod memory;
pub mod pretrained;
