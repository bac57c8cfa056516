//! dispatch-server: the closed-network command-dispatch server as a library, so that the
//! `dispatchd` binary stays thin and tests can run the real thing on a random port.

pub mod api;
pub mod app;
pub mod auth;
pub mod background;
pub mod backup;
pub mod channel;
pub mod cluster;
pub mod config;
pub mod console;
pub mod data_dir_lock;
pub mod domain;
pub mod escalation;
pub mod export;
pub mod geo;
pub mod logging;
pub mod metrics;
pub mod service;
pub mod store;
pub mod tls;

pub use app::{AppState, Application};
pub use config::Config;
