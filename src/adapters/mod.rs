//! Adapters: implementations of the domain's ports. Each translates its wire or database
//! types into domain types; none of them leaks into `domain`.

pub mod cloudify;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod memory;
pub mod outputs;
pub mod sqlite;
pub mod vault;
