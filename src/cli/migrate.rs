//! `idemhook migrate up|down|status` against the database the server would use (Rocket.toml,
//! `ROCKET_*`, `DATABASE_URL`), on a plain connection (no ingest timeouts).

use migration::{Migrator, MigratorTrait};
use sea_orm::Database;

use super::{Failure, MigrateAction};
use crate::config::{Environment, Settings, IN_MEMORY_DATABASE_URL};
use crate::db::redact;

pub async fn run(action: MigrateAction) -> Result<(), Failure> {
    let settings = Settings::from_figment(&rocket::Config::figment())
        .map_err(|e| Failure(format!("configuration: {e}")))?;
    let url = settings
        .database_url(&Environment::from_process())
        .map_err(|e| Failure(format!("configuration: {e}")))?;
    if url == IN_MEMORY_DATABASE_URL {
        return Err(Failure(
            "the configured store is in memory: there is no schema to migrate".into(),
        ));
    }
    let db = Database::connect(url.as_str())
        .await
        .map_err(|e| Failure(format!("cannot connect to {}: {e}", redact(&url))))?;
    let result = match action {
        MigrateAction::Up => {
            let pending = Migrator::get_pending_migrations(&db)
                .await
                .map_err(db_failure)?;
            Migrator::up(&db, None).await.map_err(db_failure)?;
            println!("applied {} migration(s) to {}", pending.len(), redact(&url));
            Ok(())
        }
        MigrateAction::Down { steps } => {
            Migrator::down(&db, Some(steps)).await.map_err(db_failure)?;
            println!("undid {steps} migration(s) on {}", redact(&url));
            Ok(())
        }
        MigrateAction::Status => {
            for m in Migrator::get_migration_with_status(&db)
                .await
                .map_err(db_failure)?
            {
                println!(
                    "{:<10} {}",
                    format!("{:?}", m.status()).to_lowercase(),
                    m.name()
                );
            }
            Ok(())
        }
    };
    let _ = db.close().await;
    result
}

fn db_failure(err: sea_orm::DbErr) -> Failure {
    Failure(format!("migration failed: {err}"))
}
