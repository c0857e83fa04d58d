//! The pet rules: what a tick, a feed and a treat do, when a pet dies, and how many hearts it
//! shows. Plain functions on plain data so they are tested without actors or a database.

use serde::{Deserialize, Serialize};

/// The numbers behind the rules. Every one is configurable; `Default` is the product's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Hunger added by each tick.
    pub hunger_per_tick: u32,
    /// Hunger never exceeds this.
    pub max_hunger: u32,
    /// Hunger removed by the owner's feed.
    pub feed_amount: u32,
    /// Hunger removed by someone else's treat.
    pub treat_amount: u32,
    /// A pet dies on the tick that takes its age past this many ticks.
    pub death_age: u32,
    /// Hunger of a newly adopted pet.
    pub initial_hunger: u32,
    /// Hunger covered by one heart; `max_hunger / hunger_per_heart` hearts in all.
    pub hunger_per_heart: u32,
    /// Most treats a user may hold.
    pub max_treats: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            hunger_per_tick: 5,
            max_hunger: 500,
            feed_amount: 100,
            treat_amount: 20,
            death_age: 10_000,
            initial_hunger: 250,
            hunger_per_heart: 100,
            max_treats: 5,
        }
    }
}

/// The changing part of a pet: what a tick, a feed or a treat touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PetState {
    /// Ticks lived.
    pub age: u32,
    /// 0 (full) ..= `Rules::max_hunger` (starving).
    pub hunger: u32,
    pub alive: bool,
}

/// What applying a rule did, so callers know when to persist at once or notify viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The state changed and the pet is still alive.
    Changed,
    /// This very call killed the pet.
    Died,
    /// Nothing happened because the pet was already dead.
    AlreadyDead,
}

impl PetState {
    /// A newly adopted pet.
    pub fn newborn(rules: &Rules) -> Self {
        PetState {
            age: 0,
            hunger: rules.initial_hunger.min(rules.max_hunger),
            alive: true,
        }
    }

    /// One tick: older and hungrier; dies once the age passes `death_age`.
    pub fn tick(&mut self, rules: &Rules) -> Outcome {
        if !self.alive {
            return Outcome::AlreadyDead;
        }
        self.age = self.age.saturating_add(1);
        self.hunger = self
            .hunger
            .saturating_add(rules.hunger_per_tick)
            .min(rules.max_hunger);
        if self.age > rules.death_age {
            self.alive = false;
            Outcome::Died
        } else {
            Outcome::Changed
        }
    }

    /// The owner feeds the pet.
    pub fn feed(&mut self, rules: &Rules) -> Outcome {
        self.reduce_hunger(rules.feed_amount)
    }

    /// Someone else gives the pet a treat.
    pub fn treat(&mut self, rules: &Rules) -> Outcome {
        self.reduce_hunger(rules.treat_amount)
    }

    fn reduce_hunger(&mut self, by: u32) -> Outcome {
        if !self.alive {
            return Outcome::AlreadyDead;
        }
        self.hunger = self.hunger.saturating_sub(by);
        Outcome::Changed
    }
}

/// Fewest characters in a pet's name (counted after trimming, on the server after NFC).
pub const PET_NAME_MIN: usize = 3;
/// A new password's length in characters: at least this many…
pub const PASSWORD_MIN: usize = 12;
/// …and at most this many (argon2 takes any length; the bound keeps hashing cheap).
pub const PASSWORD_MAX: usize = 72;
/// Most characters in a pet's name (counted after trimming, on the server after NFC).
pub const PET_NAME_MAX: usize = 100;

/// What is wrong with a pet's name; each side words it for its own reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Fewer than [`PET_NAME_MIN`] characters; holds the count.
    TooShort(usize),
    /// More than [`PET_NAME_MAX`] characters; holds the count.
    TooLong(usize),
    /// A control character (newline, tab, escape, NUL, …).
    ControlCharacter,
    /// An invisible format character (zero-width space or joiner, a bidirectional override
    /// such as U+202E, a byte-order mark, a soft hyphen, …): it could make a name look like
    /// another, or reverse the text shown after it.
    FormatCharacter,
    /// Nothing in it shows: only spaces, fillers (U+3164 and its kin) and blank patterns
    /// (U+2800).
    Invisible,
}

/// Checks a pet's name as typed, trimmed; `None` when it is acceptable. The server first
/// puts the name in Unicode NFC (see `canonical_pet_name` in the server) and checks and
/// stores that; the browser checks what was typed, which only differs for decomposed
/// accents (NFC tables cost ~60 KB of gzipped wasm, so the browser does without them).
pub fn pet_name_problem(name: &str) -> Option<NameProblem> {
    use crate::text::{is_blank, is_format};
    let name = name.trim();
    let n = name.chars().count();
    if name.chars().any(char::is_control) {
        Some(NameProblem::ControlCharacter)
    } else if name.chars().any(is_format) {
        Some(NameProblem::FormatCharacter)
    } else if n < PET_NAME_MIN {
        Some(NameProblem::TooShort(n))
    } else if n > PET_NAME_MAX {
        Some(NameProblem::TooLong(n))
    } else if name.chars().all(is_blank) {
        Some(NameProblem::Invisible)
    } else {
        None
    }
}

/// Hearts for a hunger value, out of `max_hearts(rules)`.
pub fn hearts(hunger: u32, rules: &Rules) -> u32 {
    let per = rules.hunger_per_heart.max(1);
    rules.max_hunger.saturating_sub(hunger).div_ceil(per)
}

/// The number of hearts a full pet shows.
pub fn max_hearts(rules: &Rules) -> u32 {
    hearts(0, rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Rules {
        Rules::default()
    }

    fn pet(age: u32, hunger: u32) -> PetState {
        PetState {
            age,
            hunger,
            alive: true,
        }
    }

    #[test]
    fn newborn_is_age_zero_hunger_250_alive() {
        assert_eq!(PetState::newborn(&r()), pet(0, 250));
    }

    #[test]
    fn tick_ages_by_one_and_adds_five_hunger() {
        let mut p = pet(7, 100);
        assert_eq!(p.tick(&r()), Outcome::Changed);
        assert_eq!(p, pet(8, 105));
    }

    #[test]
    fn tick_caps_hunger_at_500() {
        let mut p = pet(1, 498);
        p.tick(&r());
        assert_eq!(p.hunger, 500);
        p.tick(&r());
        assert_eq!(p.hunger, 500);
    }

    #[test]
    fn feed_removes_100_and_floors_at_zero() {
        let mut p = pet(1, 250);
        assert_eq!(p.feed(&r()), Outcome::Changed);
        assert_eq!(p.hunger, 150);
        let mut p = pet(1, 60);
        p.feed(&r());
        assert_eq!(p.hunger, 0);
        p.feed(&r());
        assert_eq!(p.hunger, 0);
    }

    #[test]
    fn treat_removes_20_and_floors_at_zero() {
        let mut p = pet(1, 250);
        assert_eq!(p.treat(&r()), Outcome::Changed);
        assert_eq!(p.hunger, 230);
        let mut p = pet(1, 15);
        p.treat(&r());
        assert_eq!(p.hunger, 0);
    }

    #[test]
    fn lives_through_age_10000_and_dies_when_passing_it() {
        let mut p = pet(9_999, 0);
        assert_eq!(p.tick(&r()), Outcome::Changed);
        assert_eq!(p.age, 10_000);
        assert!(p.alive);
        assert_eq!(p.tick(&r()), Outcome::Died);
        assert_eq!(p.age, 10_001);
        assert!(!p.alive);
    }

    #[test]
    fn death_age_is_configurable() {
        let rules = Rules {
            death_age: 2,
            ..Rules::default()
        };
        let mut p = PetState::newborn(&rules);
        assert_eq!(p.tick(&rules), Outcome::Changed);
        assert_eq!(p.tick(&rules), Outcome::Changed);
        assert_eq!(p.tick(&rules), Outcome::Died);
    }

    #[test]
    fn dead_pets_never_change() {
        let mut p = PetState {
            age: 10_001,
            hunger: 300,
            alive: false,
        };
        let before = p;
        assert_eq!(p.tick(&r()), Outcome::AlreadyDead);
        assert_eq!(p.feed(&r()), Outcome::AlreadyDead);
        assert_eq!(p.treat(&r()), Outcome::AlreadyDead);
        assert_eq!(p, before);
    }

    #[test]
    fn hearts_round_up_out_of_five() {
        let rules = r();
        assert_eq!(max_hearts(&rules), 5);
        assert_eq!(hearts(0, &rules), 5);
        assert_eq!(hearts(1, &rules), 5);
        assert_eq!(hearts(100, &rules), 4);
        assert_eq!(hearts(101, &rules), 4);
        assert_eq!(hearts(250, &rules), 3);
        assert_eq!(hearts(400, &rules), 1);
        assert_eq!(hearts(499, &rules), 1);
        assert_eq!(hearts(500, &rules), 0);
        // Out-of-range hunger never underflows.
        assert_eq!(hearts(900, &rules), 0);
    }

    #[test]
    fn pet_names_are_three_to_a_hundred_characters_without_controls() {
        assert_eq!(pet_name_problem("  ab  "), Some(NameProblem::TooShort(2)));
        assert_eq!(pet_name_problem(""), Some(NameProblem::TooShort(0)));
        assert_eq!(pet_name_problem("abc"), None);
        assert_eq!(pet_name_problem(&"é".repeat(100)), None);
        assert_eq!(
            pet_name_problem(&"é".repeat(101)),
            Some(NameProblem::TooLong(101))
        );
        for name in [
            "Rex\nthe dog",
            "Rex\0",
            "\u{1b}[31mRex",
            "Rex\u{7f}",
            "Re\u{85}x",
        ] {
            assert_eq!(
                pet_name_problem(name),
                Some(NameProblem::ControlCharacter),
                "{name:?}"
            );
        }
    }

    #[test]
    fn pet_names_refuse_invisible_format_characters() {
        for name in [
            "ab\u{202e}gnp.exe",
            "\u{feff}Rex",
            "Re\u{200b}x",
            "Re\u{200d}x",
            "\u{2066}Rex\u{2069}",
            "Rex\u{00ad}y",
            "\u{200b}\u{200b}\u{200b}",
            "Rex\u{E0041}",
        ] {
            assert_eq!(
                pet_name_problem(name),
                Some(NameProblem::FormatCharacter),
                "{name:?}"
            );
        }
    }

    #[test]
    fn pet_names_must_show_something() {
        for name in [
            "\u{3164}\u{3164}\u{3164}",
            "\u{2800}\u{2800}\u{2800}",
            "\u{115f}\u{1160}\u{3164}",
            "\u{ffa0}\u{ffa0}\u{ffa0}",
            "\u{3164} \u{2800} \u{3000}",
        ] {
            assert_eq!(
                pet_name_problem(name),
                Some(NameProblem::Invisible),
                "{name:?}"
            );
        }
        // A blank character beside visible ones is only spacing.
        assert_eq!(pet_name_problem("Rex\u{3164}Jr"), None);
        assert_eq!(pet_name_problem("猫猫猫"), None);
        assert_eq!(pet_name_problem("❤\u{fe0f}Rex"), None);
    }

    #[test]
    fn age_saturates_instead_of_overflowing() {
        let rules = Rules {
            death_age: u32::MAX,
            ..Rules::default()
        };
        let mut p = pet(u32::MAX, 0);
        p.tick(&rules);
        assert_eq!(p.age, u32::MAX);
    }
}
