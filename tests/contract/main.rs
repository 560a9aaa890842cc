//! Contract tests: each port against the real server behind it (DESIGN.md §8.3). One test
//! binary; one module per port. Servers come from `tests/run` (`tests/services/*.sh`) through
//! their env vars; a missing one fails the test with a clear message.

mod cloudify;
#[cfg(feature = "aws")]
mod dynamodb;
mod openapi;
mod outputs;
mod store;
mod vault;
