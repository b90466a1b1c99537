//! How strong a new password is, and whether a client accepts it. The key backup is only as
//! strong as the password and there is no reset, so both clients refuse the passwords an
//! attacker with a stolen backup would try first.
//!
//! The estimate is deliberately simple and offline: a list of the 2,000 most common passwords of
//! eight or more characters (the head of Django's `common-passwords.txt`, BSD licence), the
//! username, runs of one character and keyboard-order sequences, then the length over the
//! character classes used. A fuller estimator (zxcvbn) is too large for the web client's
//! budget; this catches what is guessed first.

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

/// How strong `password` is for the account `username`.
pub fn strength(password: &str, username: &str) -> Strength {
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
            let s = strength(pw, "alice");
            assert!(!s.acceptable(), "{pw} accepted");
            assert!(s.problem.unwrap().contains(why), "{pw}: {:?}", s.problem);
        }
    }

    #[test]
    fn reasonable_passwords_pass_with_a_score_that_grows() {
        assert_eq!(strength("qzmrtplk", "alice").label(), "fair");
        assert_eq!(strength("Qzmrtplk9x", "bob").label(), "good");
        assert_eq!(strength("correct horse battery staple", "alice").label(), "strong");
        assert!(strength("Tr0ub4dor&3x", "alice").acceptable());
        assert!(strength("grüße aus köln", "alice").acceptable());
    }
}
