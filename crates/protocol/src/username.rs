//! Usernames: 3 to 32 characters of `a-z`, `0-9` and `_`, starting with a letter. Input is
//! case-insensitive: `Alice` is `alice`.

use serde::{Deserialize, Deserializer, Serialize};

use crate::limits::{USERNAME_MAX, USERNAME_MIN};

/// A valid, lowercase username.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Username(String);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Username {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::openapi::string(
            "A username: 3 to 32 of a-z, 0-9 and _, starting with a letter (input is case-insensitive).",
            "^[A-Za-z][A-Za-z0-9_]{2,31}$",
        )
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Username {}

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid username: {0}")]
pub struct UsernameError(pub &'static str);

impl Username {
    /// Validates and lowercases.
    pub fn parse(input: &str) -> Result<Self, UsernameError> {
        if input.len() > USERNAME_MAX * 4 {
            return Err(UsernameError("at most 32 characters"));
        }
        let name = input.to_ascii_lowercase();
        let len = name.chars().count();
        if len < USERNAME_MIN {
            return Err(UsernameError("at least 3 characters"));
        }
        if len > USERNAME_MAX {
            return Err(UsernameError("at most 32 characters"));
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(UsernameError("only letters a-z, digits and _"));
        }
        if !name.as_bytes()[0].is_ascii_lowercase() {
            return Err(UsernameError("must start with a letter"));
        }
        Ok(Username(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Username {
    type Err = UsernameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Username::parse(s)
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Username::parse(&text).map_err(serde::de::Error::custom)
    }
}
