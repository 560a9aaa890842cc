//! `cloudify-osb store …`: administration of the state store itself. `create-table` makes
//! what a store needs before first use (DynamoDB: the table, its two indexes and TTL, as the
//! SAM template does in AWS; SQLite: the file and its schema) and may be run again safely.
//! Reaches the DynamoDB adapter only in builds with the `aws` feature.

use clap::{Args, Subcommand};

use crate::config::StoreLocation;
use crate::wiring::{StartupError, open_store};

/// `cloudify-osb store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The `store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the store's table if it does not exist (idempotent). DynamoDB: region,
    /// credentials and endpoint (AWS_ENDPOINT_URL_DYNAMODB) come from the environment.
    CreateTable(CreateTable),
}

/// `store create-table STORE`.
#[derive(Debug, Args)]
pub struct CreateTable {
    /// The store: dynamodb:TABLE or sqlite:PATH.
    #[arg(env = "BROKER_STORE")]
    pub store: StoreLocation,
}

/// Runs a `store` subcommand; says what it did on stdout.
pub async fn run(args: StoreArgs) -> Result<(), StartupError> {
    match args.command {
        StoreCommand::CreateTable(cmd) => create_table(&cmd.store).await,
    }
}

async fn create_table(location: &StoreLocation) -> Result<(), StartupError> {
    match location {
        StoreLocation::Memory => Err(StartupError(
            "the in-memory store has no table to create".into(),
        )),
        StoreLocation::Sqlite(_) => {
            open_store(location).await?;
            println!("{location}: ready");
            Ok(())
        }
        #[cfg(feature = "aws")]
        StoreLocation::DynamoDb(table) => {
            crate::adapters::dynamodb::DynamoStore::from_env(table.as_str())
                .await
                .create_table()
                .await
                .map_err(|e| StartupError(format!("cannot create {location}: {e}")))?;
            println!("{location}: ready (indexes gsi1, gsi2; TTL on ttl)");
            Ok(())
        }
        #[cfg(not(feature = "aws"))]
        StoreLocation::DynamoDb(_) => Err(crate::wiring::no_dynamodb()),
    }
}
