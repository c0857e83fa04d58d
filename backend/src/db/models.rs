//! Rows as diesel reads and writes them, and their checked conversions into the domain
//! types of `livepet-shared`. Insertable `New*` rows are kept apart from the rows read back,
//! and both apart from the wire views. A stored value that does not fit its domain type (a
//! negative age, an unknown species) is a [`RowError`] naming the row, never a silent clamp.

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
