//! The organisation's two-factor policy: "everyone must use 2FA", with a
//! grace period.

/// Default grace period when an administrator turns the policy on.
pub const DEFAULT_GRACE_DAYS: i64 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MfaPolicy {
    pub required: bool,
    /// When the policy was turned on.
    pub since: i64,
    pub grace_days: i64,
    /// Only phishing-resistant factors count: security keys and passkeys.
    pub keys_only: bool,
    /// How long "Remember this browser" skips the second factor, in days
    /// (0 turns it off).
    pub remember_days: i64,
}

/// "Remember this browser": 30 days unless an administrator says otherwise.
pub const DEFAULT_REMEMBER_DAYS: i64 = 30;
/// The longest an administrator may choose.
pub const MAX_REMEMBER_DAYS: i64 = 90;

/// What a user has set up, as far as the policy cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Factors {
    pub any: bool,
    /// A security key or passkey.
    pub key: bool,
}

/// Where a user stands under the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Nothing to do: no policy, or 2FA already on.
    Fine,
    /// 2FA must be turned on before `deadline`.
    Grace { deadline: i64 },
    /// Past the deadline without 2FA: only the MFA setup is reachable.
    Enforced,
}

impl MfaPolicy {
    /// A user's deadline: the grace period counts from when the policy was
    /// turned on, or from when the account was created if that is later.
    pub fn deadline_for(&self, user_created_at: i64) -> i64 {
        self.since.max(user_created_at) + self.grace_days.max(0) * 86_400
    }

    pub fn standing(&self, factors: Factors, user_created_at: i64, now: i64) -> Standing {
        let satisfied = if self.keys_only { factors.key } else { factors.any };
        if !self.required || satisfied {
            return Standing::Fine;
        }
        let deadline = self.deadline_for(user_created_at);
        if now < deadline {
            Standing::Grace { deadline }
        } else {
            Standing::Enforced
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_then_enforced() {
        let p = MfaPolicy {
            required: true,
            since: 1_000,
            grace_days: 7,
            keys_only: false,
            remember_days: 30,
        };
        let none = Factors::default();
        let app = Factors { any: true, key: false };
        let key = Factors { any: true, key: true };
        let deadline = 1_000 + 7 * 86_400;
        assert_eq!(p.standing(none, 0, 2_000), Standing::Grace { deadline });
        assert_eq!(p.standing(none, 0, deadline), Standing::Enforced);
        assert_eq!(p.standing(app, 0, deadline + 1), Standing::Fine);
        // Keys only: an authenticator app is not enough.
        let strict = MfaPolicy { keys_only: true, ..p };
        assert_eq!(strict.standing(app, 0, deadline), Standing::Enforced);
        assert_eq!(strict.standing(key, 0, deadline), Standing::Fine);
        // A newer account gets its own full grace period.
        assert_eq!(
            p.standing(none, 500_000, deadline),
            Standing::Grace {
                deadline: 500_000 + 7 * 86_400
            }
        );
        let off = MfaPolicy { required: false, ..p };
        assert_eq!(off.standing(none, 0, deadline * 2), Standing::Fine);
        let at_once = MfaPolicy { grace_days: 0, ..p };
        assert_eq!(at_once.standing(none, 0, 1_000), Standing::Enforced);
    }
}
