//! `imdsguard-mock`: a faithful mock of the cloud instance metadata services, for tests, demos
//! and users' own CI — AWS IMDS (IMDSv1 and IMDSv2 with `HttpTokens`, `HttpEndpoint` and the
//! token response's hop limit), the ECS task credentials endpoint, the GCP metadata server and
//! the Azure IMDS (instance metadata and managed-identity tokens), routed by path on one listener.
//!
//! It owns:
//! - [`core`]: the pure request → response function [`handle`] over a [`State`] (instance data,
//!   per-run secrets, run-time settings, an injectable clock); provider modules [`aws`], [`ecs`],
//!   [`gcp`], [`azure`] encode each service's documented behaviour;
//! - [`http`]: the bounded HTTP/1.x request parser and response serialization;
//! - [`secrets`]: stateless signed IMDSv2 tokens and obviously fake credentials, generated per run;
//! - [`config`]: the TOML instance data with defaults;
//! - [`log`]: one JSON line per request;
//! - [`server`]: the tokio edge (listeners, bounded accept loop, timeouts, IP TTL / hop limit).
//!
//! It never proxies anything: every answer is computed locally.

pub mod aws;
pub mod azure;
pub mod config;
pub mod core;
pub mod ecs;
pub mod gcp;
pub mod http;
pub mod log;
pub mod secrets;
pub mod server;

pub use crate::config::MockConfig;
pub use crate::core::{handle, Clock, HttpEndpoint, HttpTokens, ManualClock, Providers, Settings, State, SystemClock};
pub use crate::http::{ImdsVersion, Provider, Request, Response};
pub use crate::log::{MemoryLog, RequestLog};
pub use crate::secrets::Secrets;
pub use crate::server::{Background, Limits, Server};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1338";
