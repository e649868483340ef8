//! The labelers' side of the service: how much annotators agree on each task.

pub mod agreement;
