//! Seeding through the library, before the server starts: accounts with 2FA
//! already enrolled, the way the server itself would store them (secret
//! sealed with the server's key under the user's context, recovery codes as
//! keyed hashes, the last accepted step just behind now).

use std::net::{IpAddr, Ipv4Addr};

use diesel::Connection;
use latchkey::auth::factors::secret_context;
use latchkey::core::keys::Keyring;
use latchkey::core::recovery::RecoveryCode;
use latchkey::core::totp::TotpSecret;
use latchkey::core::types::{TimeStep, UnixTime};
use latchkey::db::credentials::{self, CredentialKind, NewConfirmed};
use latchkey::db::{Conn, DbError, recovery, users};

use crate::totp::{STEP, Totp, now_unix};

pub const PASSWORD: &str = "correct horse battery staple";

/// One seeded account.
#[derive(Clone)]
pub struct Account {
    pub username: String,
    /// None: 2FA off.
    pub totp: Option<Totp>,
    /// The address this person signs in from, sent as `X-Forwarded-For`
    /// (the server trusts 127.0.0.1 as its proxy): one IPv4 address each,
    /// which the server counts on its own (IPv6 would be counted per /64),
    /// so no account shares the per-address limits with another — as real
    /// users on their own connections would not.
    pub address: IpAddr,
}

/// `10.g.x.y`: group `g` (1, 2, …), account `n` of it (below 2^20).
fn address_of(group: usize, n: usize) -> IpAddr {
    assert!(group < 15 && n < 1 << 20, "too many accounts for 10.0.0.0/8");
    let bits = (10u32 << 24) | (u32::try_from(group + 1).unwrap() << 20) | u32::try_from(n).unwrap();
    IpAddr::V4(Ipv4Addr::from(bits))
}

/// A group of accounts: `count` users named `{prefix}{n}`, sharing one
/// password hash (hashed once: bcrypt at cost 12 takes a quarter second).
pub struct Group<'a> {
    pub prefix: &'a str,
    pub count: usize,
    pub password_hash: &'a str,
    pub two_factor: bool,
}

pub fn seed(conn: &mut Conn, keys: &Keyring, groups: &[Group<'_>]) -> anyhow::Result<Vec<Vec<Account>>> {
    let now = UnixTime(i64::try_from(now_unix())?);
    // Every step up to two behind now counts as used: T-1, T and T+1 are free.
    let last_step = now_unix() / STEP - 2;
    let out = conn.transaction::<_, DbError, _>(|c| {
        let mut out = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let mut accounts = Vec::with_capacity(g.count);
            for n in 0..g.count {
                let username = format!("{}{n}", g.prefix);
                let account = users::NewAccount {
                    username: &username,
                    password_hash: g.password_hash,
                    is_admin: false,
                    must_change_password: false,
                };
                let user = users::create(c, account, now).map_err(|e| match e {
                    users::CreateError::Db(d) => d,
                    other => panic!("{other}"),
                })?;
                let totp = if g.two_factor {
                    let secret = TotpSecret::generate();
                    let sealed = keys.seal(secret.as_bytes(), &secret_context(user.id));
                    let hashes: Vec<String> = RecoveryCode::generate_set()
                        .iter()
                        .map(|r| keys.recovery_hash(r.canonical()))
                        .collect();
                    credentials::insert_confirmed(
                        c,
                        NewConfirmed {
                            user: user.id,
                            kind: CredentialKind::Totp,
                            name: "Authenticator app",
                            secret_sealed: Some(&sealed),
                            last_step: Some(TimeStep(i64::try_from(last_step).unwrap())),
                        },
                        now,
                    )?;
                    recovery::replace(c, user.id, &hashes, now)?;
                    Some(Totp {
                        key: secret.as_bytes().try_into().unwrap(),
                        last_step,
                    })
                } else {
                    None
                };
                accounts.push(Account {
                    username,
                    totp,
                    address: address_of(gi, n),
                });
            }
            out.push(accounts);
        }
        Ok(out)
    })?;
    Ok(out)
}
