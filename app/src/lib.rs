//! # siamese-app
//!
//! The application on top of the [`siamese`] library: the `siamese` command line ([`cli`]),
//! run configs in TOML with `--set` overrides ([`config`]), evaluation plots ([`plots`]), the
//! terminal progress callback ([`progress`]), the HTTP service ([`serve`]) and the binary's
//! allocator settings ([`alloc`]). Everything a run does is a library call; this crate parses, prints and draws.
//!
//! Modules, in the order a command flows through them: [`cli`] → [`config`] → the library →
//! [`progress`], [`plots`].

#![warn(missing_docs)]

pub mod alloc;
pub mod cli;
pub mod config;
pub mod plots;
pub mod progress;
pub mod serve;
