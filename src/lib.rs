//! voc: call-transcript classification (category, sentiment and more) with a multi-task
//! model, kept in Postgres and improved from the labels people send back.

pub mod api;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod learning;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod redact;
pub mod review;
pub mod service;
pub mod store;
pub mod thread_priority;
pub mod train;

pub use api::app;
