//! voc: call-transcript classification (category, sentiment and more) with a multi-task
//! model, kept in Postgres and improved from the labels people send back.

pub mod cli;
pub mod config;
pub mod data;
pub mod model;
pub mod train;
