//! Canonical forms of what people type, so that one thing has one stored form and nothing
//! typed can hide or disguise text: email addresses (NFKC, trimmed, lowercased, the domain
//! in its IDNA Unicode form, checked by `email_address` and by the parser of the mailer)
//! and pet names (NFC, trimmed; the rules themselves are shared with the browser).
//!
//! Why each step:
//! - NFKC folds compatibility forms (fullwidth `ａ`, ligatures, circled letters) into the
//!   letters they stand for, so `ＡＬＩＣＥ@example.com` is the same account as
//!   `alice@example.com`. Lowercasing follows (and NFKC again, because lowercasing can
//!   leave a string that NFKC would still change).
//! - The domain goes through UTS #46 (the `idna` crate) to its Unicode form: `xn--…` and the
//!   Unicode spelling of the same domain are one domain, and Punycode cannot smuggle
//!   characters past the checks below.
//! - Control, format and blank characters (NUL, ESC, U+200B, U+202E, U+FEFF, U+3164, …)
//!   are refused rather than stripped: an address with one in it is not what the person
//!   meant, and a NUL would otherwise reach PostgreSQL, which refuses it in text.
//! - Mixed scripts are refused in the local part and in each domain label (UTS #39 through
//!   `unicode-security`): `аlice` with a Cyrillic `а` is not a typo of `alice` but a
//!   look-alike. One script, or the Latin + Han/Kana/Hangul mixes that UTS #39 calls highly
//!   restrictive, is fine. An address written wholly in another script (`алиса@…`) is a
//!   different mailbox and a different account; it is allowed, because it is a real
//!   address, and emails are never shown to other users, so it cannot impersonate anyone.

use livepet_shared::text::is_blank;
use unicode_normalization::UnicodeNormalization;
use unicode_security::{MixedScript, RestrictionLevel, RestrictionLevelDetection};

/// Most characters in a stored email address.
pub const EMAIL_MAX: usize = 160;
/// Input longer than this many characters is refused before any normalisation: NFKC can
/// make a string many times longer, and no address needs it.
const EMAIL_INPUT_MAX: usize = 4 * EMAIL_MAX;

/// Why an email address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailProblem {
    Empty,
    TooLong,
    /// A control, format or blank character inside the address (NUL, ESC, a space, U+200B,
    /// U+202E, U+FEFF, U+3164, …).
    InvisibleCharacter,
    /// Not of the form `name@example.com` (also quoted local parts, domain literals, a
    /// domain without a dot, or one that is not a valid internationalised domain).
    NotAnAddress,
    /// `name@example.com.`: the root dot would make a second spelling of the same address.
    TrailingDot,
    /// Letters of different scripts in one part (`аlice` with a Cyrillic `а`).
    MixedScripts,
}

impl EmailProblem {
    /// The message shown beside the email field.
    pub fn message(self) -> String {
        match self {
            EmailProblem::Empty => "enter your email address".into(),
            EmailProblem::TooLong => format!("at most {EMAIL_MAX} characters"),
            EmailProblem::InvisibleCharacter => {
                "no spaces, control characters or invisible characters".into()
            }
            EmailProblem::NotAnAddress => "enter an email address like name@example.com".into(),
            EmailProblem::TrailingDot => "no dot at the end of the domain".into(),
            EmailProblem::MixedScripts => {
                "letters from different alphabets mixed in one part (such as a Cyrillic а \
                 among Latin letters)"
                    .into()
            }
        }
    }
}

/// The one stored form of an email address, or why it is refused. Idempotent: the
/// canonical form of a canonical address is itself.
pub fn canonical_email(raw: &str) -> Result<String, EmailProblem> {
    if raw.trim().is_empty() {
        return Err(EmailProblem::Empty);
    }
    if raw.chars().count() > EMAIL_INPUT_MAX {
        return Err(EmailProblem::TooLong);
    }
    let folded: String = raw.nfkc().collect();
    let email: String = folded.trim().to_lowercase().nfkc().collect();
    if email.chars().any(is_blank) {
        return Err(EmailProblem::InvisibleCharacter);
    }
    // Quoted local parts and comments are valid RFC 5322 but give one mailbox several
    // spellings (`"bob"@x.org` is `bob@x.org`); nobody signs up with them.
    if email.contains(['"', '(', ')', '[', ']', '\\']) {
        return Err(EmailProblem::NotAnAddress);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(EmailProblem::NotAnAddress);
    };
    if domain.contains('@') || local.is_empty() {
        return Err(EmailProblem::NotAnAddress);
    }
    if domain.ends_with('.') {
        return Err(EmailProblem::TrailingDot);
    }
    let (domain, mapped) = idna::domain_to_unicode(domain);
    if mapped.is_err() {
        return Err(EmailProblem::NotAnAddress);
    }
    // UTS #46 maps other full stops (U+3002 `。`) to `.`: look for the root dot again.
    if domain.ends_with('.') {
        return Err(EmailProblem::TrailingDot);
    }
    if idna::domain_to_ascii_strict(&domain).is_err() {
        return Err(EmailProblem::NotAnAddress);
    }
    if !one_script(local) || !domain.split('.').all(one_script) {
        return Err(EmailProblem::MixedScripts);
    }
    let email = format!("{local}@{domain}");
    if email.chars().count() > EMAIL_MAX {
        return Err(EmailProblem::TooLong);
    }
    let options = email_address::Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    if email_address::EmailAddress::parse_with_options(&email, options).is_err() {
        return Err(EmailProblem::NotAnAddress);
    }
    // The mailer writes to what is stored: an address its parser refuses could never get
    // a reset link.
    if email.parse::<lettre::Address>().is_err() {
        return Err(EmailProblem::NotAnAddress);
    }
    Ok(email)
}

/// Whether a part of an address is written in one script (UTS #39 single-script, common
/// characters such as digits, `.`, `+` and `-` going with any), or in a highly restrictive
/// mix (Latin with Han and Kana, Bopomofo or Hangul).
fn one_script(part: &str) -> bool {
    if part.is_single_script() {
        return true;
    }
    let letters: String = part.chars().filter(|c| c.is_alphanumeric()).collect();
    letters.as_str().detect_restriction_level() <= RestrictionLevel::HighlyRestrictive
}

/// The one stored form of a pet's name: Unicode NFC, trimmed. Check it with
/// [`livepet_shared::rules::pet_name_problem`]; the length rule counts this form.
pub fn canonical_pet_name(raw: &str) -> String {
    let composed: String = raw.nfc().collect();
    composed.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::rules::{pet_name_problem, NameProblem};

    fn ok(raw: &str) -> String {
        canonical_email(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e:?}"))
    }

    fn refused(raw: &str) -> EmailProblem {
        match canonical_email(raw) {
            Ok(e) => panic!("{raw:?} accepted as {e:?}"),
            Err(p) => p,
        }
    }

    #[test]
    fn variants_of_one_address_have_one_form() {
        for raw in [
            "alice@example.com",
            "  Alice@Example.COM \n",
            "ＡＬＩＣＥ＠ＥＸＡＭＰＬＥ．ＣＯＭ",
            "alice@ｅxample.com",
            "ALICE@EXAMPLE.COM",
        ] {
            assert_eq!(ok(raw), "alice@example.com", "{raw:?}");
        }
        // Punycode and Unicode spellings of one domain, and its fullwidth/uppercase forms.
        for raw in [
            "ivan@xn--e1afmkfd.xn--p1ai",
            "ivan@пример.рф",
            "IVAN@ПРИМЕР.РФ",
            "ivan@XN--E1AFMKFD.XN--P1AI",
        ] {
            assert_eq!(ok(raw), "ivan@пример.рф", "{raw:?}");
        }
        assert_eq!(ok("josé@café.fr"), "josé@café.fr");
        // A decomposed é is the same letter as a precomposed one.
        assert_eq!(ok("jose\u{301}@cafe\u{301}.fr"), "josé@café.fr");
        assert_eq!(
            ok("first.last+tag@sub.example.co.uk"),
            "first.last+tag@sub.example.co.uk"
        );
        assert_eq!(ok("a@b.c"), "a@b.c");
    }

    #[test]
    fn canonical_forms_are_fixed_points() {
        for raw in [
            "ＡＬＩＣＥ@example.com",
            "İstanbul@example.com",
            "straße@example.de",
            "ﬁle@example.com",
            "ǅemal@example.com",
            "ivan@XN--E1AFMKFD.XN--P1AI",
            "ΣΊΣΥΦΟΣ@example.gr",
            "王小明@例え.jp",
        ] {
            if let Ok(once) = canonical_email(raw) {
                assert_eq!(canonical_email(&once), Ok(once.clone()), "{raw:?}");
            }
        }
    }

    proptest::proptest! {
        /// Whatever is typed, what is stored is a fixed point: looking up a stored address
        /// finds it, and the same person typing it again gets the same account.
        #[test]
        fn canonical_forms_are_fixed_points_for_any_input(
            local in "[a-zA-Z0-9.+_ÀßİıſǅﬁＡ-Ｚａ-ｚ０-９а-яΑ-Ωα-ω王あ\u{301}\u{308}-]{1,12}",
            domain in "[a-zA-Z0-9.ÀßİＡ-Ｚ．。а-я王-]{1,12}",
            tld in "(com|org|рф|ＣＯＭ|xn--p1ai|co\\.uk)",
        ) {
            let raw = format!("{local}@{domain}.{tld}");
            if let Ok(once) = canonical_email(&raw) {
                proptest::prop_assert_eq!(canonical_email(&once), Ok(once.clone()));
                proptest::prop_assert!(once.chars().count() <= EMAIL_MAX);
            }
        }
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for raw in [
            "al\u{200b}ice@example.com",
            "alice@exa\u{200d}mple.com",
            "\u{feff}alice@example.com",
            "alice\u{202e}@example.com",
            "al\u{1b}[31mice@example.com",
            "alice\0@example.com",
            "alice@example.com\0",
            "\0",
            "al ice@example.com",
            "al\u{3164}ice@example.com",
            "al\u{ad}ice@example.com",
            "alice@exam\u{2800}ple.com",
            "alice@example.com\u{2066}",
        ] {
            assert_eq!(refused(raw), EmailProblem::InvisibleCharacter, "{raw:?}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        assert_eq!(refused(""), EmailProblem::Empty);
        assert_eq!(refused("   "), EmailProblem::Empty);
        assert_eq!(refused("alice@example.com."), EmailProblem::TrailingDot);
        assert_eq!(refused("alice@example.com．"), EmailProblem::TrailingDot);
        assert_eq!(refused("alice@example.com。"), EmailProblem::TrailingDot);
        assert_eq!(ok("alice@example。com"), "alice@example.com");
        for raw in [
            "nope",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a@b@example.com",
            "\"alice\"@example.com",
            "alice(comment)@example.com",
            "alice@[127.0.0.1]",
            "<alice@example.com>",
            "alice<alice@example.com>",
            "alice..b@example.com",
            ".alice@example.com",
            "alice@-example.com",
            "alice@exa_mple.com",
            "alice@example..com",
            "alice@xn--zz.com",
        ] {
            assert_eq!(refused(raw), EmailProblem::NotAnAddress, "{raw:?}");
        }
        assert_eq!(
            refused(&format!("{}@example.com", "a".repeat(160))),
            EmailProblem::TooLong
        );
        assert_eq!(refused(&"a".repeat(100_000)), EmailProblem::TooLong);
    }

    #[test]
    fn look_alikes_mixing_scripts_are_refused() {
        // Cyrillic а (U+0430) among Latin letters, in the local part and in the domain.
        assert_eq!(
            refused("\u{430}lice@example.com"),
            EmailProblem::MixedScripts
        );
        assert_eq!(
            refused("alice@ex\u{430}mple.com"),
            EmailProblem::MixedScripts
        );
        // Punycode cannot hide it: xn--exmple-4nf is "exаmple" with the Cyrillic а.
        assert_eq!(
            refused("alice@xn--exmple-4nf.com"),
            EmailProblem::MixedScripts
        );
        // Greek omicron in a Latin word.
        assert_eq!(refused("b\u{3bf}b@example.com"), EmailProblem::MixedScripts);
        // A wholly Cyrillic address is a real, different address; Latin with Han is a
        // highly restrictive mix and allowed.
        assert_eq!(ok("алиса@example.com"), "алиса@example.com");
        assert_ne!(ok("алиса@example.com"), ok("alice@example.com"));
        assert_eq!(ok("wang王@example.cn"), "wang王@example.cn");
    }

    #[test]
    fn pet_names_are_stored_nfc_and_trimmed() {
        assert_eq!(canonical_pet_name("  Rex  "), "Rex");
        assert_eq!(canonical_pet_name("Zoe\u{301}"), "Zoé");
        assert_eq!(canonical_pet_name("Zoé"), "Zoé");
        // The length rule counts the composed name: 100 decomposed é are 200 chars typed
        // but 100 stored.
        let decomposed = "e\u{301}".repeat(100);
        assert_eq!(
            pet_name_problem(&decomposed),
            Some(NameProblem::TooLong(200))
        );
        assert_eq!(pet_name_problem(&canonical_pet_name(&decomposed)), None);
        assert_eq!(
            pet_name_problem(&canonical_pet_name("ab\u{202e}gnp.exe")),
            Some(NameProblem::FormatCharacter)
        );
    }
}
