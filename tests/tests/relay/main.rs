//! End-to-end tests of the relay, the native client and the CLI: a real `sealroom` process
//! on 127.0.0.1:0 with a fresh data dir per test.
#![allow(clippy::unwrap_used, clippy::panic)] // test code: failures should panic with context

mod abuse;
mod access;
mod admin;
mod architecture;
mod authz;
mod backup;
mod bad_input;
mod bench;
mod chaos;
mod cli;
mod cli_groups;
mod crash;
mod files;
mod groups;
mod messaging;
mod nodes;
mod openapi;
mod sessions;
mod webapp;
