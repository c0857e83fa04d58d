//! Rows as diesel reads and writes them, and their checked conversions into the domain
//! types of `livepet-shared`. Insertable `New*` rows are kept apart from the rows read back,
//! and both apart from the wire views. A stored value that does not fit its domain type (a
//! negative age, an unknown species) is a [`RowError`] naming the row, never a silent clamp.
//!
//! Pets the world starts and lists are read as [`StoredPetRow`]: every column as wide as the
//! database can hold it and nullable, so a damaged value (an age of 4294967297, 'abc', NULL)
//! is seen as it is and named, instead of being narrowed into a plausible number or failing
//! the whole query.

use super::schema::{pets, users};
use diesel::prelude::*;
use livepet_shared::wire::{PetView, User};
use livepet_shared::{PetId, PetState, Species, UserId};

/// A pet row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = pets)]
pub struct PetRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub species: String,
    pub age: i32,
    pub hunger: i32,
    pub is_alive: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A pet row read without trusting it (see the module note). Built by
/// `queries::live_pets_page` and `queries::stored_pets_of_user`; [`PetRow::try_from`] checks
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StoredPetRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub name: Option<String>,
    pub species: Option<String>,
    pub age: Option<i64>,
    pub hunger: Option<i64>,
    /// 1 alive, 0 dead; anything else is damage.
    pub is_alive: Option<i64>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// Values whose storage class is not the column's (SQLite keeps 'abc' in an INTEGER
    /// column and reads it back as 0), described by the query; empty when there are none.
    pub mistyped: String,
}

/// A pet about to be inserted.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = pets)]
pub struct NewPetRow<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub species: &'a str,
    pub age: i32,
    pub hunger: i32,
    pub is_alive: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The changing columns of one pet, as a snapshot writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PetStateRow {
    pub id: i64,
    pub age: i32,
    pub hunger: i32,
    pub is_alive: bool,
    pub updated_at: i64,
}

/// A user row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub available_treats: i32,
    pub created_at: i64,
}

/// A user about to be inserted.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUserRow<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub available_treats: i32,
    pub created_at: i64,
}

/// A stored row whose values do not fit the domain (damaged or edited by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} row {id} is damaged: {problem}")]
pub struct RowError {
    pub table: &'static str,
    pub id: i64,
    pub problem: String,
}

impl RowError {
    pub fn species(id: i64, species: &str) -> RowError {
        RowError {
            table: "pets",
            id,
            problem: format!(
                "unknown species `{}`",
                species.chars().take(40).collect::<String>()
            ),
        }
    }
}

/// A count from the domain (age, hunger, treats) as the INTEGER column it is stored in.
pub fn stored_count(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A stored count (age, hunger, treats) as the unsigned number it stands for.
fn count(table: &'static str, id: i64, column: &str, v: i32) -> Result<u32, RowError> {
    u32::try_from(v).map_err(|_| RowError {
        table,
        id,
        problem: format!("{column} is {v}"),
    })
}

/// A stored column that must be present.
fn present<T>(id: i64, column: &str, v: Option<T>) -> Result<T, RowError> {
    v.ok_or_else(|| RowError {
        table: "pets",
        id,
        problem: format!("{column} is NULL"),
    })
}

/// A stored count (age, hunger) as the INTEGER it must be to be written back.
fn narrow(id: i64, column: &str, v: Option<i64>) -> Result<i32, RowError> {
    let v = present(id, column, v)?;
    i32::try_from(v).map_err(|_| RowError {
        table: "pets",
        id,
        problem: format!("{column} is {v}"),
    })
}

impl TryFrom<StoredPetRow> for PetRow {
    type Error = RowError;

    /// Checks every column of a stored pet; the first problem names the pet.
    fn try_from(r: StoredPetRow) -> Result<Self, RowError> {
        let id = r.id;
        if !r.mistyped.is_empty() {
            return Err(RowError {
                table: "pets",
                id,
                problem: r.mistyped,
            });
        }
        let is_alive = match present(id, "is_alive", r.is_alive)? {
            0 => false,
            1 => true,
            other => {
                return Err(RowError {
                    table: "pets",
                    id,
                    problem: format!("is_alive is {other}"),
                })
            }
        };
        let row = PetRow {
            id,
            user_id: present(id, "user_id", r.user_id)?,
            name: present(id, "name", r.name)?,
            species: present(id, "species", r.species)?,
            age: narrow(id, "age", r.age)?,
            hunger: narrow(id, "hunger", r.hunger)?,
            is_alive,
            created_at: present(id, "created_at", r.created_at)?,
            updated_at: present(id, "updated_at", r.updated_at)?,
        };
        // Negative counts and unknown species are caught by the conversions every PetRow
        // goes through; checking them here too names the problem at the first look.
        row.state()?;
        if Species::parse(&row.species).is_none() {
            return Err(RowError::species(id, &row.species));
        }
        Ok(row)
    }
}

impl StoredPetRow {
    /// The view of a pet whose row failed its check: what could be read, and nothing made
    /// up that would pass for its real state. It is not alive in the world, so it shows
    /// `alive: false`; unreadable fields show 0, an empty name, or the first species.
    pub fn damaged_view(&self) -> PetView {
        let count = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        PetView {
            id: PetId(self.id),
            name: self.name.clone().unwrap_or_default(),
            species: self
                .species
                .as_deref()
                .and_then(Species::parse)
                .unwrap_or(Species::ALL[0]),
            age: count(self.age),
            hunger: count(self.hunger),
            alive: false,
            born_at: self.created_at.unwrap_or(0),
            owner_id: UserId(self.user_id.unwrap_or(0)),
            at: self.updated_at.unwrap_or(0),
        }
    }
}

impl PetRow {
    /// The pet's changing state.
    pub fn state(&self) -> Result<PetState, RowError> {
        Ok(PetState {
            age: count("pets", self.id, "age", self.age)?,
            hunger: count("pets", self.id, "hunger", self.hunger)?,
            alive: self.is_alive,
        })
    }
}

impl TryFrom<&PetRow> for PetView {
    type Error = RowError;

    /// The view of a stored pet (a dead one, or one not alive in this process).
    fn try_from(row: &PetRow) -> Result<Self, RowError> {
        let state = row.state()?;
        Ok(PetView {
            id: PetId(row.id),
            name: row.name.clone(),
            species: Species::parse(&row.species)
                .ok_or_else(|| RowError::species(row.id, &row.species))?,
            age: state.age,
            hunger: state.hunger,
            alive: state.alive,
            born_at: row.created_at,
            owner_id: UserId(row.user_id),
            at: row.updated_at,
        })
    }
}

impl TryFrom<&UserRow> for User {
    type Error = RowError;

    fn try_from(row: &UserRow) -> Result<Self, RowError> {
        Ok(User {
            id: UserId(row.id),
            email: row.email.clone(),
            available_treats: count("users", row.id, "available_treats", row.available_treats)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> PetRow {
        PetRow {
            id: 4,
            user_id: 2,
            name: "Rex".into(),
            species: "dog".into(),
            age: 7,
            hunger: 120,
            is_alive: true,
            created_at: 10,
            updated_at: 20,
        }
    }

    #[test]
    fn a_sound_row_becomes_a_view() {
        let view = PetView::try_from(&row()).unwrap();
        assert_eq!((view.age, view.hunger, view.at), (7, 120, 20));
        assert_eq!(view.owner_id, UserId(2));
    }

    fn stored() -> StoredPetRow {
        StoredPetRow {
            id: 4,
            user_id: Some(2),
            name: Some("Rex".into()),
            species: Some("dog".into()),
            age: Some(7),
            hunger: Some(120),
            is_alive: Some(1),
            created_at: Some(10),
            updated_at: Some(20),
            mistyped: String::new(),
        }
    }

    #[test]
    fn a_sound_stored_row_is_checked_into_a_row() {
        assert_eq!(PetRow::try_from(stored()), Ok(row()));
        let dead = PetRow::try_from(StoredPetRow {
            is_alive: Some(0),
            ..stored()
        })
        .unwrap();
        assert!(!dead.is_alive);
    }

    #[test]
    fn stored_damage_is_named_never_narrowed() {
        let cases = [
            (
                StoredPetRow {
                    age: Some(4_294_967_297),
                    ..stored()
                },
                "age is 4294967297",
            ),
            (
                StoredPetRow {
                    age: Some(5_000_000_000),
                    ..stored()
                },
                "age is 5000000000",
            ),
            (
                StoredPetRow {
                    hunger: Some(-3),
                    ..stored()
                },
                "hunger is -3",
            ),
            (
                StoredPetRow {
                    is_alive: Some(2),
                    ..stored()
                },
                "is_alive is 2",
            ),
            (
                StoredPetRow {
                    name: None,
                    ..stored()
                },
                "name is NULL",
            ),
            (
                StoredPetRow {
                    created_at: None,
                    ..stored()
                },
                "created_at is NULL",
            ),
            (
                StoredPetRow {
                    mistyped: "age is 'abc'".into(),
                    ..stored()
                },
                "age is 'abc'",
            ),
            (
                StoredPetRow {
                    species: Some("dragon".into()),
                    ..stored()
                },
                "unknown species `dragon`",
            ),
        ];
        for (r, problem) in cases {
            let e = PetRow::try_from(r).unwrap_err();
            assert_eq!(e.to_string(), format!("pets row 4 is damaged: {problem}"));
        }
    }

    #[test]
    fn damaged_rows_are_named_not_clamped() {
        let e = PetView::try_from(&PetRow { age: -1, ..row() }).unwrap_err();
        assert_eq!(e.to_string(), "pets row 4 is damaged: age is -1");
        let e = PetView::try_from(&PetRow {
            species: "dragon".into(),
            ..row()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "pets row 4 is damaged: unknown species `dragon`"
        );
    }
}
