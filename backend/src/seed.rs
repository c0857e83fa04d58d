//! `livepet seed`: many live pets for demos, tests and benchmarks, written in large batches.

use crate::clock::now_ms;
use crate::config::SeedArgs;
use crate::db::models::{NewPetRow, NewUserRow};
use crate::db::{self, queries};
use anyhow::Context as _;
use livepet_shared::{Rules, Species};
use std::time::Instant;

/// Rows per transaction: big enough to amortise commits, small enough to show progress.
const ROWS_PER_TX: u64 = 50_000;

/// A password hash that no password matches: seeded owners cannot log in until a password
/// is set for them.
pub const NO_LOGIN: &str = "!";

const NAMES: [&str; 24] = [
    "Biscuit", "Pickle", "Mochi", "Nugget", "Pepper", "Waffle", "Clover", "Noodle", "Pebble",
    "Sprout", "Toffee", "Maple", "Juniper", "Button", "Ziggy", "Olive", "Peanut", "Sunny", "Tofu",
    "Marble", "Comet", "Fig", "Pudding", "Quill",
];

/// The name of seeded pet number `i`: varied, and unique within a run.
pub fn pet_name(i: u64) -> String {
    format!("{} {}", NAMES[(i % NAMES.len() as u64) as usize], i + 1)
}

pub fn run(args: &SeedArgs) -> anyhow::Result<()> {
    let mut conn = db::connect_and_migrate(&args.db.database_url)?;
    let email = crate::services::canonical::canonical_email(&args.owner).map_err(|problem| {
        anyhow::anyhow!(
            "--owner must be an email address, got `{}`: {}",
            args.owner,
            problem.message()
        )
    })?;
    let owner = match queries::find_user_by_email(&mut conn, &email)? {
        Some(u) => u,
        None => {
            let u = queries::insert_user(
                &mut conn,
                &NewUserRow {
                    email: &email,
                    password_hash: NO_LOGIN,
                    available_treats: Rules::default().max_treats as i32,
                    created_at: now_ms(),
                },
            )
            .context("creating the owner")?;
            log::info!("created owner {email} (id {})", u.id);
            u
        }
    };
    let rules = Rules::default();
    let start = Instant::now();
    let mut done = 0u64;
    while done < args.pets {
        let n = ROWS_PER_TX.min(args.pets - done);
        let now = now_ms();
        let names: Vec<String> = (done..done + n).map(pet_name).collect();
        let rows: Vec<NewPetRow<'_>> = names
            .iter()
            .enumerate()
            .map(|(k, name)| NewPetRow {
                user_id: owner.id,
                name,
                species: Species::ALL[(done as usize + k) % Species::ALL.len()].as_str(),
                age: 0,
                hunger: rules.initial_hunger as i32,
                is_alive: true,
                created_at: now,
                updated_at: now,
            })
            .collect();
        queries::insert_pets(&mut conn, &rows).context("inserting pets")?;
        done += n;
        if done == args.pets || done.is_multiple_of(200_000) {
            let secs = start.elapsed().as_secs_f64();
            log::info!(
                "seeded {done}/{} pets ({:.0} pets/s)",
                args.pets,
                done as f64 / secs.max(1e-9)
            );
        }
    }
    log::info!(
        "seeded {} pets for {email} in {:.2} s",
        args.pets,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
