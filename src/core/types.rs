//! Small types for values that used to travel as bare `i64`s side by side
//! (a user id where a time was meant, a TOTP step where an epoch was), and a
//! password that never prints.
//!
//! The storage layer reads them straight from their columns
//! (`#[diesel(deserialize_as = i64)]`) and writes `.0`.

use std::fmt;

macro_rules! int_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                Self(v)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

int_newtype!(
    /// The id of a user row.
    UserId
);
int_newtype!(
    /// Seconds since the Unix epoch.
    UnixTime
);
int_newtype!(
    /// A TOTP time step (Unix time / 30).
    TimeStep
);
int_newtype!(
    /// A user's session epoch: sessions signed in under another value are
    /// no longer valid (see `db::sessions::revoke_all`).
    SessionEpoch
);
int_newtype!(
    /// The id of a second-factor credential row.
    CredentialId
);
int_newtype!(
    /// The id of a known-browser row.
    BrowserId
);

impl UnixTime {
    pub fn plus(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    pub fn minus(self, seconds: i64) -> Self {
        Self(self.0.saturating_sub(seconds))
    }

    /// Seconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: UnixTime) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A password as typed. It is never printed (`Debug` says `Password(…)`),
/// and only `expose` hands out the text, to the hashing code.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (for the bound on what is worth hashing).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let p = Password::new("hunter2 hunter2".into());
        assert_eq!(format!("{p:?}"), "Password(…)");
        assert_eq!(p.expose(), "hunter2 hunter2");
    }

    #[test]
    fn times() {
        let t = UnixTime(100);
        assert_eq!(t.plus(30), UnixTime(130));
        assert_eq!(t.plus(30).since(t), 30);
        assert!(t < t.plus(1));
    }
}
