//! `cargo run -p migration -- up|down|status|fresh`: the schema CLI. It reads `DATABASE_URL`,
//! like the server, so point it at the same database the server uses.

use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
