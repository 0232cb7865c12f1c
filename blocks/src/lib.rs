//! Block formats shared by the TD Analytics agent and collector: the byte codecs, columnar event
//! blocks, and the binary batch an agent ships in them.

pub mod batch;
pub mod codec;
pub mod events;
