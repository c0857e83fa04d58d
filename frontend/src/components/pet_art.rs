//! The pet's picture: a small SVG face drawn here for each species (our own art, no fonts or
//! downloads needed), with crossed-out eyes once the pet has died.

use leptos::prelude::*;
use livepet_shared::Species;

/// How a species is drawn: colours and which features its face has.
struct Look {
    fur: &'static str,
    /// Muzzle, belly or face patch.
    light: &'static str,
    /// Ears, beak, crest.
    accent: &'static str,
    ears: Ears,
    mouth: Mouth,
}

#[derive(PartialEq)]
enum Ears {
    Pointy,
    Floppy,
    Long,
    Round,
    Tufts,
    EyeBumps,
    Crest,
    None,
}

#[derive(PartialEq)]
enum Mouth {
    Whiskers,
    Snout,
    Beak,
    Smile,
}

fn look(species: Species) -> Look {
    use Ears as E;
    use Mouth as M;
    let (fur, light, accent, ears, mouth) = match species {
        Species::Cat => ("#f4a259", "#fde2c4", "#e07a3c", E::Pointy, M::Whiskers),
        Species::Dog => ("#c98b5a", "#f3dcc3", "#7a4b2a", E::Floppy, M::Snout),
        Species::Rabbit => ("#e9e4ef", "#ffffff", "#f4a7b9", E::Long, M::Whiskers),
        Species::Hamster => ("#e8b877", "#fff1dc", "#d08a4f", E::Round, M::Whiskers),
        Species::Turtle => ("#7cbf6b", "#cfe8b9", "#4f8f45", E::None, M::Smile),
        Species::Parrot => ("#4cb86a", "#c9f0c6", "#f2a93b", E::Crest, M::Beak),
        Species::Fox => ("#e8743b", "#ffffff", "#3b2a20", E::Pointy, M::Snout),
        Species::Owl => ("#9a7550", "#e9d8bf", "#f2a93b", E::Tufts, M::Beak),
        Species::Frog => ("#6cc24a", "#d9f2b4", "#3f8f2a", E::EyeBumps, M::Smile),
        Species::Penguin => ("#33415c", "#ffffff", "#f2a93b", E::None, M::Beak),
    };
    Look {
        fur,
        light,
        accent,
        ears,
        mouth,
    }
}

/// The SVG markup for a species (100×100 view box), alive or dead. Pure, so it is tested
/// without a browser.
pub fn pet_svg(species: Species, dead: bool) -> String {
    let l = look(species);
    let mut s = String::with_capacity(1600);
    s.push_str(r#"<svg viewBox="0 0 100 100" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" focusable="false">"#);
    // Behind the head.
    match l.ears {
        Ears::Pointy => s.push_str(&format!(
            r#"<path d="M22 40 L26 8 L46 28 Z M78 40 L74 8 L54 28 Z" fill="{}"/><path d="M27 33 L29 16 L40 28 Z M73 33 L71 16 L60 28 Z" fill="{}"/>"#,
            l.fur, l.light
        )),
        Ears::Floppy => s.push_str(&format!(
            r#"<ellipse cx="20" cy="45" rx="11" ry="22" transform="rotate(18 20 45)" fill="{0}"/><ellipse cx="80" cy="45" rx="11" ry="22" transform="rotate(-18 80 45)" fill="{0}"/>"#,
            l.accent
        )),
        Ears::Long => s.push_str(&format!(
            r#"<ellipse cx="36" cy="18" rx="9" ry="22" fill="{0}"/><ellipse cx="64" cy="18" rx="9" ry="22" fill="{0}"/><ellipse cx="36" cy="20" rx="4" ry="15" fill="{1}"/><ellipse cx="64" cy="20" rx="4" ry="15" fill="{1}"/>"#,
            l.fur, l.accent
        )),
        Ears::Round => s.push_str(&format!(
            r#"<circle cx="25" cy="28" r="11" fill="{0}"/><circle cx="75" cy="28" r="11" fill="{0}"/><circle cx="25" cy="28" r="6" fill="{1}"/><circle cx="75" cy="28" r="6" fill="{1}"/>"#,
            l.accent, l.light
        )),
        Ears::Tufts => s.push_str(&format!(
            r#"<path d="M22 34 L20 10 L40 26 Z M78 34 L80 10 L60 26 Z" fill="{}"/>"#,
            l.fur
        )),
        Ears::EyeBumps => s.push_str(&format!(
            r#"<circle cx="32" cy="30" r="15" fill="{0}"/><circle cx="68" cy="30" r="15" fill="{0}"/>"#,
            l.fur
        )),
        Ears::Crest => s.push_str(&format!(
            r#"<path d="M50 24 C44 10 50 4 56 2 C54 10 60 14 50 24 Z M46 26 C36 16 38 8 42 4 C44 12 50 16 46 26 Z" fill="{}"/>"#,
            l.accent
        )),
        Ears::None => {}
    }
    // Head.
    s.push_str(&format!(
        r#"<circle cx="50" cy="56" r="34" fill="{}"/>"#,
        l.fur
    ));
    // Face patch.
    match species {
        Species::Penguin => s.push_str(&format!(
            r#"<ellipse cx="50" cy="62" rx="25" ry="26" fill="{}"/>"#,
            l.light
        )),
        Species::Owl => s.push_str(&format!(
            r#"<circle cx="37" cy="52" r="14" fill="{0}"/><circle cx="63" cy="52" r="14" fill="{0}"/>"#,
            l.light
        )),
        Species::Turtle => s.push_str(&format!(
            r#"<circle cx="34" cy="40" r="4" fill="{0}"/><circle cx="66" cy="38" r="3" fill="{0}"/><circle cx="58" cy="28" r="3" fill="{0}"/>"#,
            l.accent
        )),
        _ => {}
    }
    if matches!(l.mouth, Mouth::Snout | Mouth::Whiskers) {
        s.push_str(&format!(
            r#"<ellipse cx="50" cy="72" rx="17" ry="12" fill="{}"/>"#,
            l.light
        ));
    }
    // Eyes: frogs have theirs on the bumps.
    let (ey, left, right, r) = match (species, &l.ears) {
        (_, Ears::EyeBumps) => (30, 32, 68, 7),
        (Species::Owl, _) => (52, 37, 63, 7),
        _ => (52, 38, 62, 5),
    };
    if dead {
        for x in [left, right] {
            s.push_str(&format!(
                r##"<path d="M{a} {b} L{c} {d} M{a} {d} L{c} {b}" stroke="#2d2a26" stroke-width="3" stroke-linecap="round"/>"##,
                a = x - r,
                b = ey - r,
                c = x + r,
                d = ey + r
            ));
        }
    } else {
        if matches!(l.ears, Ears::EyeBumps) || species == Species::Owl {
            for x in [left, right] {
                s.push_str(&format!(
                    r##"<circle cx="{x}" cy="{ey}" r="{}" fill="#ffffff"/>"##,
                    r + 3
                ));
            }
        }
        for x in [left, right] {
            s.push_str(&format!(
                r##"<circle cx="{x}" cy="{ey}" r="{r}" fill="#2d2a26"/><circle cx="{}" cy="{}" r="1.6" fill="#ffffff"/>"##,
                x + 2,
                ey - 2
            ));
        }
    }
    // Cheeks.
    if species != Species::Penguin && species != Species::Owl {
        s.push_str(r##"<circle cx="29" cy="66" r="5" fill="#f58f8f" opacity=".45"/><circle cx="71" cy="66" r="5" fill="#f58f8f" opacity=".45"/>"##);
    }
    // Nose and mouth.
    match l.mouth {
        Mouth::Whiskers => s.push_str(&format!(
            r##"<path d="M46 66 L54 66 L50 71 Z" fill="{0}"/><path d="M50 71 Q46 76 42 73 M50 71 Q54 76 58 73" stroke="#2d2a26" stroke-width="1.6" fill="none" stroke-linecap="round"/><path d="M30 70 L14 67 M30 74 L15 76 M70 70 L86 67 M70 74 L85 76" stroke="#2d2a26" stroke-width="1.2" opacity=".55" stroke-linecap="round"/>"##,
            if species == Species::Cat { "#e0607e" } else { l.accent }
        )),
        Mouth::Snout => s.push_str(&format!(
            r##"<ellipse cx="50" cy="66" rx="6" ry="4.5" fill="{0}"/><path d="M50 70 L50 74 M50 74 Q45 79 41 75 M50 74 Q55 79 59 75" stroke="#2d2a26" stroke-width="1.6" fill="none" stroke-linecap="round"/>"##,
            if species == Species::Fox { "#2d2a26" } else { l.accent }
        )),
        Mouth::Beak => s.push_str(&format!(
            r#"<path d="M43 62 L57 62 L50 74 Z" fill="{}"/>"#,
            l.accent
        )),
        Mouth::Smile => s.push_str(
            r##"<path d="M36 70 Q50 82 64 70" stroke="#2d2a26" stroke-width="2" fill="none" stroke-linecap="round"/>"##,
        ),
    }
    s.push_str("</svg>");
    s
}

/// A pet's picture with an accessible name ("Biscuit the cat"); greyed out when dead.
#[component]
pub fn PetArt(
    species: Species,
    /// What a screen reader says, e.g. "Biscuit the cat" or just "Cat".
    #[prop(into)]
    label: String,
    /// Draw the dead face and grey it out.
    #[prop(into, optional)]
    dead: Signal<bool>,
    /// Extra class for sizing: "small", "medium" or "big".
    #[prop(optional)]
    size: &'static str,
) -> impl IntoView {
    let svg = move || pet_svg(species, dead.get());
    view! {
        <span
            class=move || format!("pet-art {size} {}", if dead.get() { "dead" } else { "" })
            role="img"
            aria-label=label
            data-species=species.as_str()
            inner_html=svg
        ></span>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_species_has_its_own_well_formed_picture() {
        let mut seen = std::collections::HashSet::new();
        for s in Species::ALL {
            let svg = pet_svg(s, false);
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            assert_eq!(svg.matches('<').count(), svg.matches('>').count());
            assert!(seen.insert(svg), "{s:?} looks like another species");
            assert!(pet_svg(s, true).contains("stroke-width=\"3\""));
        }
    }
}
