//! How strong a new password is, and whether a client accepts it. The key backup is only as
//! strong as the password and there is no reset, so both clients refuse the passwords an
//! attacker with a stolen backup would try first.
//!
//! Two layers, one rule:
//!
//! - **The floor**, always compiled in and small enough for the web client's main bundle: a list
//!   of the 2,000 most common passwords of eight or more characters (the head of Django's
//!   `common-passwords.txt`, BSD licence), the username, runs of one character and
//!   keyboard-order sequences, then the length over the character classes used.
//! - **zxcvbn** (Dropbox's estimator, the `zxcvbn` crate) with the `estimator` feature: its
//!   dictionaries, keyboard graphs, dates and l33t patterns. A password the floor accepts must
//!   also need more than 10^8 guesses by zxcvbn's count (score 3 or 4), since a stolen key
//!   backup is attacked offline. The native client and CLI build it in; the web client runs it
//!   in a Web Worker (`web/strength`, about a megabyte, loaded only on the screens that set a
//!   password) and shows the floor's verdict until the worker answers.

/// The 2,000 most common passwords of at least 8 characters, lowercase, one per line.
const COMMON: &str = include_str!("common-passwords.txt");

/// What a client says about a password being typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strength {
    /// 0 (refused) … 4 (strong).
    pub score: u8,
    /// Why it is refused, for people; `None` when accepted.
    pub problem: Option<&'static str>,
}

impl Strength {
    /// Whether a client accepts it for a new account or a password change.
    pub fn acceptable(&self) -> bool {
        self.problem.is_none()
    }

    /// The score in a word.
    pub fn label(&self) -> &'static str {
        match self.score {
            0 => "too weak",
            1 => "weak",
            2 => "fair",
            3 => "good",
            _ => "strong",
        }
    }
}

/// Shortest password accepted for a new account or a password change.
pub const MIN_PASSWORD_CHARS: usize = 8;

fn refused(problem: &'static str) -> Strength {
    Strength { score: 0, problem: Some(problem) }
}

/// Whether this build has zxcvbn behind [`strength`] (the `estimator` feature).
pub const FULL_ESTIMATOR: bool = cfg!(feature = "estimator");

/// How strong `password` is for the account `username`: the floor, then zxcvbn when this build
/// has it ([`FULL_ESTIMATOR`]).
pub fn strength(password: &str, username: &str) -> Strength {
    let floor = floor(password, username);
    #[cfg(feature = "estimator")]
    if floor.acceptable() {
        return estimate(password, username);
    }
    floor
}

/// The refusal zxcvbn's warning stands for, in the same plain words as the floor's.
#[cfg(feature = "estimator")]
fn warning_text(warning: Option<zxcvbn::feedback::Warning>) -> &'static str {
    use zxcvbn::feedback::Warning as W;
    match warning {
        Some(W::StraightRowsOfKeysAreEasyToGuess | W::ShortKeyboardPatternsAreEasyToGuess) => {
            "keyboard patterns like qwertyui are guessed early"
        }
        Some(W::RepeatsLikeAaaAreEasyToGuess | W::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess) => {
            "repeated characters or words add little"
        }
        Some(W::ThisIsATop10Password | W::ThisIsATop100Password | W::ThisIsACommonPassword) => {
            "this is one of the most common passwords"
        }
        Some(W::ThisIsSimilarToACommonlyUsedPassword) => {
            "this is a common password with small changes, which are guessed early"
        }
        Some(W::SequencesLikeAbcAreEasyToGuess) => "sequences like abc or 6543 are guessed early",
        Some(W::RecentYearsAreEasyToGuess | W::DatesAreOftenEasyToGuess) => {
            "dates and years are guessed early"
        }
        Some(W::AWordByItselfIsEasyToGuess) => "a single word is guessed early: add another word or two",
        Some(W::NamesAndSurnamesByThemselvesAreEasyToGuess | W::CommonNamesAndSurnamesAreEasyToGuess) => {
            "names are guessed early: add another uncommon word or two"
        }
        None => "add another word or two; uncommon words are better",
    }
}

/// zxcvbn's verdict on a password the floor accepted.
#[cfg(feature = "estimator")]
fn estimate(password: &str, username: &str) -> Strength {
    let entropy = zxcvbn::zxcvbn(password, &[username, "sealroom"]);
    match entropy.score() {
        zxcvbn::Score::Four => Strength { score: 4, problem: None },
        zxcvbn::Score::Three => Strength { score: 3, problem: None },
        low => Strength {
            score: u8::from(low).min(1),
            problem: Some(warning_text(entropy.feedback().and_then(|f| f.warning()))),
        },
    }
}

/// The floor: what every build refuses, zxcvbn or not.
pub fn floor(password: &str, username: &str) -> Strength {
    let chars: Vec<char> = password.chars().collect();
    if chars.len() < MIN_PASSWORD_CHARS {
        return refused("use at least 8 characters");
    }
    let lower = password.to_lowercase();
    if COMMON.lines().any(|c| c == lower) {
        return refused("this is one of the most common passwords");
    }
    let name = username.to_lowercase();
    if name.chars().count() >= 3 && lower.replace(&name, "").chars().count() < MIN_PASSWORD_CHARS {
        return refused("do not build your password from your username");
    }
    if chars.iter().all(|c| *c == chars[0]) {
        return refused("one character repeated is guessed at once");
    }
    let steps: Vec<i64> =
        chars.windows(2).map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0]))).collect();
    if steps.iter().all(|s| *s == steps[0]) && steps[0].abs() <= 1 {
        return refused("a sequence like abcdefgh or 12345678 is guessed at once");
    }
    let classes = [
        (chars.iter().any(|c| c.is_ascii_lowercase()), 26.0),
        (chars.iter().any(|c| c.is_ascii_uppercase()), 26.0),
        (chars.iter().any(|c| c.is_ascii_digit()), 10.0),
        (chars.iter().any(|c| c.is_ascii_punctuation() || *c == ' '), 33.0),
        (chars.iter().any(|c| !c.is_ascii()), 100.0),
    ];
    let pool: f64 = classes.iter().filter(|(used, _)| *used).map(|(_, n)| n).sum();
    // A common password inside a longer one adds little: count it as one symbol.
    let embedded = COMMON
        .lines()
        .filter(|c| c.len() >= MIN_PASSWORD_CHARS && lower.contains(*c))
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    let effective = (chars.len() - embedded + usize::from(embedded > 0)) as f64;
    let bits = effective * pool.log2();
    match bits {
        b if b < 28.0 => {
            Strength { score: 1, problem: Some("add more characters, or mix in capitals, digits or symbols") }
        }
        b if b < 40.0 => Strength { score: 2, problem: None },
        b if b < 64.0 => Strength { score: 3, problem: None },
        _ => Strength { score: 4, problem: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_guesses_are_refused() {
        for (pw, why) in [
            ("short", "8 characters"),
            ("password", "most common"),
            ("Password", "most common"),
            ("iloveyou", "most common"),
            ("alice2024", "username"),
            ("ñññññññññ", "repeated"),
            ("klmnopqrst", "sequence"),
            ("76543210", "sequence"),
            ("48271935", "more characters"),
            ("password12345", "more characters"),
        ] {
            let s = floor(pw, "alice");
            assert!(!s.acceptable(), "{pw} accepted");
            assert!(s.problem.unwrap().contains(why), "{pw}: {:?}", s.problem);
        }
    }

    #[test]
    fn reasonable_passwords_pass_with_a_score_that_grows() {
        assert_eq!(floor("qzmrtplk", "alice").label(), "fair");
        assert_eq!(floor("Qzmrtplk9x", "bob").label(), "good");
        assert_eq!(floor("correct horse battery staple", "alice").label(), "strong");
        assert!(floor("Tr0ub4dor&3x", "alice").acceptable());
        assert!(floor("grüße aus köln", "alice").acceptable());
    }

    /// What the floor lets through and zxcvbn refuses: names, repeats, and common passwords
    /// with a year or a symbol added, each with its reason.
    #[cfg(feature = "estimator")]
    #[test]
    fn zxcvbn_refuses_what_the_floor_lets_through() {
        for (pw, why) in [
            ("Summer2024!", "common password with small changes"),
            ("johnsmith1990", "common password with small changes"),
            ("iloveyouforever", "common password with small changes"),
            ("jenniferlopez", "names"),
            ("abcabcabcabc", "repeated"),
        ] {
            assert!(floor(pw, "alice").acceptable(), "the floor already refuses {pw}");
            let s = strength(pw, "alice");
            assert!(!s.acceptable(), "{pw} accepted");
            assert!(s.score <= 1, "{pw}: score {}", s.score);
            assert!(s.problem.unwrap_or_default().contains(why), "{pw}: {:?}", s.problem);
        }
    }

    #[cfg(feature = "estimator")]
    #[test]
    fn zxcvbn_accepts_long_uncommon_passphrases_and_counts_the_username() {
        const { assert!(FULL_ESTIMATOR) };
        assert_eq!(strength("correct horse battery staple", "alice").label(), "strong");
        assert!(strength("grüße aus köln am rhein", "alice").acceptable());
        assert!(strength("Qzmrtplk9x!v", "bob").acceptable());
        // The floor's refusals come first, with the floor's words.
        assert_eq!(strength("password", "alice"), floor("password", "alice"));
        // zxcvbn is told the username: a name-based password scores lower than the same shape
        // for someone else.
        let own = strength("marguerite-sealroom-7", "marguerite");
        let other = strength("marguerite-sealroom-7", "bob");
        assert!(own.score <= other.score, "{own:?} vs {other:?}");
    }
}
