//! The species a pet can be, with the art the app shows for each.

use serde::{Deserialize, Serialize};

/// One kind of animal. Serialized as its snake_case name, which is also what the database stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Species {
    Cat,
    Dog,
    Rabbit,
    Hamster,
    Turtle,
    Parrot,
    Fox,
    Owl,
    Frog,
    Penguin,
}

impl Species {
    /// Every species, in the order the picker shows them.
    pub const ALL: [Species; 10] = [
        Species::Cat,
        Species::Dog,
        Species::Rabbit,
        Species::Hamster,
        Species::Turtle,
        Species::Parrot,
        Species::Fox,
        Species::Owl,
        Species::Frog,
        Species::Penguin,
    ];

    /// The stable name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Species::Cat => "cat",
            Species::Dog => "dog",
            Species::Rabbit => "rabbit",
            Species::Hamster => "hamster",
            Species::Turtle => "turtle",
            Species::Parrot => "parrot",
            Species::Fox => "fox",
            Species::Owl => "owl",
            Species::Frog => "frog",
            Species::Penguin => "penguin",
        }
    }

    /// Parses the stable name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Species> {
        Species::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// A human name for the picker.
    pub fn label(self) -> &'static str {
        match self {
            Species::Cat => "Cat",
            Species::Dog => "Dog",
            Species::Rabbit => "Rabbit",
            Species::Hamster => "Hamster",
            Species::Turtle => "Turtle",
            Species::Parrot => "Parrot",
            Species::Fox => "Fox",
            Species::Owl => "Owl",
            Species::Frog => "Frog",
            Species::Penguin => "Penguin",
        }
    }

    /// The pet's art: an emoji, rendered by the viewer's own font.
    pub fn emoji(self) -> &'static str {
        match self {
            Species::Cat => "🐱",
            Species::Dog => "🐶",
            Species::Rabbit => "🐰",
            Species::Hamster => "🐹",
            Species::Turtle => "🐢",
            Species::Parrot => "🦜",
            Species::Fox => "🦊",
            Species::Owl => "🦉",
            Species::Frog => "🐸",
            Species::Penguin => "🐧",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in Species::ALL {
            assert_eq!(Species::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).expect("serializes"),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(Species::parse("dragon"), None);
    }
}
