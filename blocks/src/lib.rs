//! Block formats shared by the TD Analytics agent and collector: the byte codecs, columnar event
//! and sample blocks, and the binary batch an agent ships in them.

pub mod batch;
pub mod codec;
pub mod events;
pub mod samples;
