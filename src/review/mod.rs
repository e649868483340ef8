//! The labelers' side of the service: how the next item to label is chosen, and how much
//! annotators agree on each task.

pub mod agreement;
pub mod queue;
