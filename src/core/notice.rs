//! The email notifications (SPEC §8): which there are, their subjects, and
//! the rules that decide whether one is sent. Pure: no database or SMTP.

/// One kind of message. `as_str` is its name in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A sign-in from a browser the account had not signed in with.
    NewBrowser,
    /// The password was right, the second step never completed.
    Unfinished,
    MfaOn,
    MfaOff,
    FactorAdded,
    FactorRemoved,
    RecoveryCodeUsed,
    CodesRegenerated,
    PasswordChanged,
    AdminReset,
    AdminUnlocked,
    Locked,
    /// To the old (verified) address, when the address is changed or removed.
    EmailChanged,
    /// "This wasn't me" was used: what it did (no link of its own).
    Secured,
    /// The link that verifies an address (to the unverified address).
    Verify,
}

/// How long a "This wasn't me" link works.
pub const NOT_ME_SECONDS: i64 = 7 * 24 * 60 * 60;
/// How long a verification link works.
pub const VERIFY_SECONDS: i64 = 24 * 60 * 60;
/// Verification messages a user may have sent in a day (an address typed
/// into the Profile tab cannot be flooded).
pub const VERIFY_PER_DAY: i64 = 5;
/// A message not delivered within this long is given up.
pub const GIVE_UP_SECONDS: i64 = 24 * 60 * 60;
/// Notices an attacker can cause (lockouts, unfinished sign-ins) go out at
/// most once in this long per user.
pub const ONCE_PER_SECONDS: i64 = 60 * 60;

const ALL: [Notice; 15] = [
    Notice::NewBrowser,
    Notice::Unfinished,
    Notice::MfaOn,
    Notice::MfaOff,
    Notice::FactorAdded,
    Notice::FactorRemoved,
    Notice::RecoveryCodeUsed,
    Notice::CodesRegenerated,
    Notice::PasswordChanged,
    Notice::AdminReset,
    Notice::AdminUnlocked,
    Notice::Locked,
    Notice::EmailChanged,
    Notice::Secured,
    Notice::Verify,
];

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::NewBrowser => "new_browser",
            Notice::Unfinished => "unfinished_sign_in",
            Notice::MfaOn => "mfa_on",
            Notice::MfaOff => "mfa_off",
            Notice::FactorAdded => "factor_added",
            Notice::FactorRemoved => "factor_removed",
            Notice::RecoveryCodeUsed => "recovery_code_used",
            Notice::CodesRegenerated => "recovery_codes_regenerated",
            Notice::PasswordChanged => "password_changed",
            Notice::AdminReset => "admin_reset",
            Notice::AdminUnlocked => "admin_unlocked",
            Notice::Locked => "locked",
            Notice::EmailChanged => "email_changed",
            Notice::Secured => "secured",
            Notice::Verify => "verify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// The subject line, as SPEC §8 words it.
    pub fn subject(self, issuer: &str) -> String {
        match self {
            Notice::NewBrowser => format!("New sign-in to your {issuer} account from a new browser"),
            Notice::Unfinished => {
                "Sign-in not completed: your password was used, but the second step was not completed".into()
            }
            Notice::MfaOn => "Two-factor authentication turned on".into(),
            Notice::MfaOff => "Two-factor authentication turned off".into(),
            Notice::FactorAdded => "A sign-in method was added to your account".into(),
            Notice::FactorRemoved => "A sign-in method was removed from your account".into(),
            Notice::RecoveryCodeUsed => "A recovery code was used to sign in".into(),
            Notice::CodesRegenerated => "New recovery codes were generated".into(),
            Notice::PasswordChanged => "Your password was changed".into(),
            Notice::AdminReset => "An administrator reset your two-factor authentication".into(),
            Notice::AdminUnlocked => "An administrator unlocked your account".into(),
            Notice::Locked => "Your account was locked after failed sign-in attempts".into(),
            Notice::EmailChanged => format!("The email address of your {issuer} account was changed"),
            Notice::Secured => format!("Your {issuer} account was secured after “This wasn’t me”"),
            Notice::Verify => "Verify your email address".into(),
        }
    }

    /// What happened, in one sentence for the body.
    pub fn headline(self) -> &'static str {
        match self {
            Notice::NewBrowser => "Your account was signed in to from a browser it had not been used with before.",
            Notice::Unfinished => {
                "Someone entered your password correctly but did not complete the second step of the sign-in."
            }
            Notice::MfaOn => "Two-factor authentication was turned on for your account.",
            Notice::MfaOff => "Two-factor authentication was turned off for your account.",
            Notice::FactorAdded => "A sign-in method was added to your account.",
            Notice::FactorRemoved => "A sign-in method was removed from your account.",
            Notice::RecoveryCodeUsed => "A recovery code was used to sign in to your account.",
            Notice::CodesRegenerated => {
                "A new set of recovery codes was generated for your account; the old codes no longer work."
            }
            Notice::PasswordChanged => "The password of your account was changed.",
            Notice::AdminReset => {
                "An administrator reset the two-factor authentication of your account: it is off now."
            }
            Notice::AdminUnlocked => "An administrator cleared the sign-in locks of your account.",
            Notice::Locked => "Sign-ins to your account were locked for a while after failed attempts.",
            Notice::EmailChanged => {
                "The address for your account’s security emails was changed: this address will get no more of them."
            }
            Notice::Secured => {
                "“This wasn’t me” was used: every session was signed out, remembered and known browsers were \
                 forgotten, what the message reported was undone where it can be, and the next sign-in must \
                 choose a new password."
            }
            Notice::Verify => "Confirm that this address is yours to get security notifications.",
        }
    }

    /// What the person should do if it was not them.
    pub fn advice(self) -> &'static str {
        match self {
            Notice::Unfinished => {
                "If this was you, there is nothing to do. If it was not, someone knows your password: change it now."
            }
            Notice::Locked => {
                "If this was not you, someone is guessing at your password. Your account is safe while they guess \
                 wrong; a long, unique password and two-factor authentication keep it that way."
            }
            Notice::Verify => "If you did not ask for this, ignore this message: nothing will be sent to this address.",
            Notice::Secured => {
                "Sign in and choose a new password now. If you cannot (someone changed the password), ask your \
                 administrator to help."
            }
            _ => "If this was you, there is nothing to do.",
        }
    }

    /// Whether the message carries a "This wasn't me" link.
    pub fn has_not_me_link(self) -> bool {
        !matches!(self, Notice::Verify | Notice::Secured)
    }

    /// Sent only if the user wants it (the others always are).
    pub fn optional(self) -> bool {
        self == Notice::NewBrowser
    }

    /// Notices that someone else can cause over and over: at most one per
    /// `ONCE_PER_SECONDS` per user.
    pub fn limited(self) -> bool {
        matches!(self, Notice::Locked | Notice::Unfinished)
    }
}

/// When to try again after `attempts` temporary failures: 10 s, then
/// doubling, at most 30 minutes apart.
pub fn retry_delay(attempts: i32) -> i64 {
    let doublings = attempts.clamp(1, 16) - 1;
    (10_i64 << doublings).min(30 * 60)
}

/// Whether `address` is acceptable as a person's email address: one `@`,
/// something on each side, a dot in the domain, no spaces or control
/// characters, at most 254 bytes (RFC 5321). The SMTP layer parses it
/// properly as well.
pub fn plausible_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        && !local.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_subjects_match_the_spec() {
        for n in ALL {
            assert_eq!(Notice::parse(n.as_str()), Some(n));
        }
        assert_eq!(
            Notice::NewBrowser.subject("Acme"),
            "New sign-in to your Acme account from a new browser"
        );
        assert_eq!(Notice::Verify.subject("Acme"), "Verify your email address");
        assert!(!Notice::Verify.has_not_me_link() && Notice::Locked.has_not_me_link());
    }

    #[test]
    fn retries_back_off_to_half_an_hour() {
        assert_eq!(retry_delay(1), 10);
        assert_eq!(retry_delay(2), 20);
        assert_eq!(retry_delay(3), 40);
        assert_eq!(retry_delay(20), 1800);
        assert!(retry_delay(1) < 60, "the first retry within a minute");
    }

    #[test]
    fn addresses() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org"] {
            assert!(plausible_address(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a b@c.co",
            "a@b.co\r\nBcc: x@y.z",
            "<a@b.co>",
            "a@b@c.co",
        ] {
            assert!(!plausible_address(bad), "{bad:?}");
        }
        assert!(!plausible_address(&format!("{}@b.co", "a".repeat(65))));
    }
}
