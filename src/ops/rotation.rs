//! `latchkey key rotate`: replace the server key while the servers run.
//!
//! The server key seals the TOTP secrets, keys the recovery-code hashes,
//! the known-browser token hashes and the throttling counters' account
//! names, and makes the session cookies' key and the CSRF tokens
//! (`core::keys`). A rotation takes three steps, each run once on one
//! machine, with the key file copied to every instance and the instances
//! restarted one at a time after each (README, "Rotating the server key"):
//!
//! 1. **add**: a new key joins the file, not active. Instances restarted
//!    with it still make everything with the old key, and can read what
//!    the new key will make.
//! 2. **activate**: the new key becomes the active one (first in the file)
//!    and the database's *current* key. Instances on the old active key
//!    and on the new one run side by side meanwhile; both hold both keys,
//!    so each opens the other's secrets and accepts the other's cookies,
//!    CSRF tokens, codes and browser tokens. From now on an instance whose
//!    file lacks the new key refuses to start.
//! 3. **finish**: every secret still sealed under the old key is sealed
//!    under the new one (one conditional update each, so a server that
//!    re-seals the same secret on use is never overwritten), the throttling
//!    counters of every user move to the new key's account name, and the
//!    old key is *retired*: its master key leaves the file, so nothing
//!    sealed under it opens any more (an old database backup included), and
//!    nothing new is made with it. What a person holds that was made under
//!    it — recovery codes, a remembered browser's token, a session cookie,
//!    an open form's CSRF token — cannot be re-keyed without that person,
//!    so the retired line keeps only the sub-keys that check those
//!    (`core::keys::RETAINED_PURPOSES`): recovery codes keep working until
//!    used or regenerated, a browser's token moves to the new key at its
//!    next sign-in, a cookie at its next request. An instance whose active
//!    key is retired refuses to start.
//!
//! Every run also drops retired keys that nothing needs any more: no
//! unused recovery code hashed under them, no remembered browser unseen
//! since their retirement, and no session that can still be alive
//! (12 hours, the absolute session lifetime, after retirement).
//!
//! `--all` runs the three steps at once: for a deployment whose servers
//! are stopped while it runs.

use std::path::Path;

use crate::config::Config;
use crate::core::keys::{Keyring, replace_private_file};
use crate::core::limits::SESSION_ABSOLUTE_SECONDS;
use crate::core::types::UnixTime;
use crate::db::server_keys::{self, KeyRecord};
use crate::db::{Db, rekey, users};

/// A step of a rotation.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add a new key, not active yet
    Add,
    /// Make the added key the active and current one
    Activate,
    /// Re-seal everything under the active key and retire the old one
    Finish,
}

/// Refuse to start on a key file that a rotation has left behind: one
/// without the database's current key, or whose active key was retired.
pub fn check_on_start(records: &[KeyRecord], keys: &Keyring, path: &Path) -> anyhow::Result<()> {
    if let Some(current) = server_keys::current(records)
        && !keys.holds_master(&current.key_id)
    {
        anyhow::bail!(
            "this database's current server key is `{}` (made current by `latchkey key rotate`), and the key file {} \
             does not hold it: install the key file from the rotation on this instance (README, \"Rotating the server key\")",
            current.key_id,
            path.display()
        );
    }
    let active = keys.active_id();
    if records.iter().any(|r| r.key_id == active && r.retired_at.is_some()) {
        anyhow::bail!(
            "the active key `{active}` of {} was retired by `latchkey key rotate`: install the key file from the \
             rotation on this instance (README, \"Rotating the server key\")",
            path.display()
        );
    }
    for (id, retired) in keys.ids() {
        if !retired && records.iter().any(|r| r.key_id == id && r.retired_at.is_some()) {
            tracing::warn!(
                "the key file {} still holds the master key of `{id}`, which was retired; install the key file from \
                 the rotation",
                path.display()
            );
        }
    }
    Ok(())
}

/// What the file and the database say about a rotation in progress.
struct State {
    records: Vec<KeyRecord>,
    /// A full, inactive key added by `add` and not yet activated.
    added: Option<String>,
    /// Full, inactive keys that were active before: to retire.
    older: Vec<String>,
}

fn state(keys: &Keyring, records: Vec<KeyRecord>) -> State {
    let record = |id: &str| records.iter().find(|r| r.key_id == id);
    let active_since = record(keys.active_id()).and_then(|r| r.activated_at).unwrap_or(0);
    let mut added = None;
    let mut older = Vec::new();
    for (id, retired) in keys.ids().into_iter().skip(1) {
        if retired {
            continue;
        }
        match record(&id) {
            Some(r) if r.activated_at.is_none() && r.retired_at.is_none() && r.created_at >= active_since => {
                added = Some(id)
            }
            _ => older.push(id),
        }
    }
    State { records, added, older }
}

/// Run the next step of a rotation (or `step`, or all of them).
pub async fn rotate(config: &Config, step: Option<Step>, all: bool) -> anyhow::Result<()> {
    let path = &config.key_file;
    let mut keys = Keyring::load_existing(path)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no key file at {}: start the server once (it creates one), or give --key-file",
            path.display()
        )
    })?;
    let db = Db::open_single(&config.database_url)?;
    let now = config.clock.time();
    let rotation = Rotation {
        db,
        path: path.as_path(),
        now,
    };
    rotation.record_keys(&keys).await?;
    // A key file from before rotations were recorded: its active key has
    // been the current one since it was first seen.
    let active = keys.active_id().to_string();
    rotation
        .db
        .run(move |c| {
            let records = server_keys::all(c)?;
            if records.iter().any(|r| r.key_id == active && r.activated_at.is_none()) {
                server_keys::mark_activated(c, &active, now)?;
            }
            Ok(())
        })
        .await?;
    let steps = if all {
        vec![Step::Add, Step::Activate, Step::Finish]
    } else {
        vec![match step {
            Some(s) => s,
            None => {
                let st = rotation.state(&keys).await?;
                if st.added.is_some() {
                    Step::Activate
                } else if !st.older.is_empty() {
                    Step::Finish
                } else {
                    Step::Add
                }
            }
        }]
    };
    for step in steps {
        match step {
            Step::Add => rotation.add(&mut keys).await?,
            Step::Activate => rotation.activate(&mut keys).await?,
            Step::Finish => rotation.finish(&mut keys).await?,
        }
    }
    rotation.prune(&mut keys).await?;
    if all {
        println!(
            "All three steps done. Start the servers with the key file {}.",
            path.display()
        );
    }
    Ok(())
}

struct Rotation<'a> {
    db: Db,
    path: &'a Path,
    now: UnixTime,
}

impl Rotation<'_> {
    async fn state(&self, keys: &Keyring) -> anyhow::Result<State> {
        let records = self.db.run(server_keys::all).await?;
        Ok(state(keys, records))
    }

    /// Record the file's keys (refusing a key whose id the database knows
    /// with another fingerprint).
    async fn record_keys(&self, keys: &Keyring) -> anyhow::Result<()> {
        let (fingerprints, now) = (keys.fingerprints(), self.now);
        if let Some(m) = self
            .db
            .run(move |c| server_keys::check_and_record(c, &fingerprints, now))
            .await?
        {
            anyhow::bail!(
                "the key file {} holds a key `{}` that differs from the key of that id which wrote this database",
                self.path.display(),
                m.key_id
            );
        }
        Ok(())
    }

    fn write(&self, keys: &Keyring) -> anyhow::Result<()> {
        replace_private_file(self.path, keys.to_file_text().as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write the key file {}: {e}", self.path.display()))
    }

    async fn add(&self, keys: &mut Keyring) -> anyhow::Result<()> {
        let st = self.state(keys).await?;
        if let Some(added) = st.added {
            anyhow::bail!("key `{added}` was added already; run `latchkey key rotate --step activate` next");
        }
        // Ids are never reused: the database remembers every key by its id.
        let highest = keys
            .ids()
            .into_iter()
            .map(|(id, _)| id)
            .chain(st.records.iter().map(|r| r.key_id.clone()))
            .filter_map(|id| id.strip_prefix('k').and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        let id = format!("k{}", highest + 1);
        keys.add_key(&id).map_err(anyhow::Error::msg)?;
        self.record_keys(keys).await?;
        self.write(keys)?;
        println!(
            "Step 1 of 3: added key `{id}` to {} (not active yet; `{}` stays active).\n\
             Next: copy this key file to every instance and restart them one at a time; each still makes everything \
             with `{}` and can now read what `{id}` will make. Then run `latchkey key rotate` again.",
            self.path.display(),
            keys.active_id(),
            keys.active_id()
        );
        Ok(())
    }

    async fn activate(&self, keys: &mut Keyring) -> anyhow::Result<()> {
        let st = self.state(keys).await?;
        let Some(id) = st.added else {
            anyhow::bail!("no added key to activate; run `latchkey key rotate --step add` first");
        };
        let old = keys.active_id().to_string();
        keys.activate(&id).map_err(anyhow::Error::msg)?;
        let (key_id, now) = (id.clone(), self.now);
        self.db
            .run(move |c| server_keys::mark_activated(c, &key_id, now))
            .await?;
        self.write(keys)?;
        println!(
            "Step 2 of 3: `{id}` is now the active key of {} and this database's current key.\n\
             Next: copy this key file to every instance and restart them one at a time. Instances on `{old}` and on \
             `{id}` accept each other's sessions, forms, codes and secrets meanwhile; an instance whose key file lacks \
             `{id}` now refuses to start. When every instance runs with this file, run `latchkey key rotate` again.",
            self.path.display()
        );
        Ok(())
    }

    async fn finish(&self, keys: &mut Keyring) -> anyhow::Result<()> {
        let st = self.state(keys).await?;
        if st.added.is_some() {
            anyhow::bail!("an added key is not active yet; run `latchkey key rotate --step activate` first");
        }
        if st.older.is_empty() {
            anyhow::bail!("the key file holds no older key to retire; run `latchkey key rotate` to start a rotation");
        }
        let active = keys.active_id().to_string();
        let shared = std::sync::Arc::new(Keyring::parse(&keys.to_file_text(), &self.path.display().to_string())?);

        // Every secret under another key, sealed again under the active one.
        let (ring, a) = (shared.clone(), active.clone());
        let (resealed, failed) = self
            .db
            .run(move |c| {
                let mut resealed = 0;
                let mut failed = Vec::new();
                for s in rekey::sealed_not_under(c, &a)? {
                    let context = crate::auth::factors::secret_context(s.user);
                    match ring.open(&s.value, &context) {
                        Ok(plain) => {
                            if rekey::reseal(c, &s, &ring.seal(&plain, &context))? {
                                resealed += 1;
                            }
                        }
                        Err(e) => failed.push(format!("user {}: {e}", s.user.0)),
                    }
                }
                Ok((resealed, failed))
            })
            .await?;
        if !failed.is_empty() {
            anyhow::bail!(
                "{} secret(s) cannot be opened with this key file, so nothing was retired: {}",
                failed.len(),
                failed.join("; ")
            );
        }

        // Throttling counters of every user, under the new key's name for
        // the account. (Counters of names that are no account — guesses —
        // cannot be renamed without the name; they start afresh.)
        let (ring, older) = (shared.clone(), st.older.clone());
        let moved = self
            .db
            .run(move |c| {
                let mut moved = 0;
                for user in users::all(c)? {
                    let new = crate::auth::account_key(&ring, &user.username);
                    for old_id in &older {
                        if let Some(old) = crate::auth::account_key_under(&ring, old_id, &user.username) {
                            moved += diesel::Connection::transaction(c, |c| rekey::rekey_account(c, &old, &new))?;
                        }
                    }
                }
                Ok(moved)
            })
            .await?;

        // Nothing may be left under the old keys before they lose their
        // master key (a server still on an old key could have sealed one
        // meanwhile: then finish every restart first and run this again).
        let a = active.clone();
        let left = self.db.run(move |c| rekey::sealed_not_under(c, &a)).await?.len();
        if left > 0 {
            anyhow::bail!(
                "{left} secret(s) were sealed under an older key while this ran; make sure every instance runs with \
                 the key file from step 2, then run `latchkey key rotate` again"
            );
        }
        for old_id in &st.older {
            keys.retire(old_id).map_err(anyhow::Error::msg)?;
            let (id, now) = (old_id.clone(), self.now);
            self.db.run(move |c| server_keys::mark_retired(c, &id, now)).await?;
        }
        self.write(keys)?;
        let retired = st.older.join("`, `");
        println!(
            "Step 3 of 3: sealed {resealed} secret(s) again under `{active}`, moved {moved} throttling counter(s), and \
             retired `{retired}` in {}: its master key is gone from the file, so nothing sealed under it opens and \
             nothing new is made with it. It keeps only what checks recovery codes, remembered browsers, session \
             cookies and form tokens made under it, until a later `latchkey key rotate` finds nothing left that needs \
             it.\nNext: copy this key file to every instance and restart them one at a time. Keep the old key file \
             with the database backups made before this rotation: only it opens their secrets.",
            self.path.display()
        );
        Ok(())
    }

    /// Drop retired keys that nothing needs any more.
    async fn prune(&self, keys: &mut Keyring) -> anyhow::Result<()> {
        let retired: Vec<String> = keys.ids().into_iter().filter(|(_, r)| *r).map(|(id, _)| id).collect();
        if retired.is_empty() {
            return Ok(());
        }
        let records = self.db.run(server_keys::all).await?;
        let mut dropped = Vec::new();
        for id in retired {
            let retired_at = records
                .iter()
                .find(|r| r.key_id == id)
                .and_then(|r| r.retired_at)
                .unwrap_or(self.now.0);
            let (key_id, now) = (id.clone(), self.now);
            let (codes, browsers) = self
                .db
                .run(move |c| {
                    Ok((
                        rekey::unused_recovery_codes_under(c, &key_id)?,
                        rekey::known_browsers_unseen_since(c, retired_at, now)?,
                    ))
                })
                .await?;
            let sessions_over = self.now.0 - retired_at >= SESSION_ABSOLUTE_SECONDS;
            if codes == 0 && browsers == 0 && sessions_over {
                keys.drop_retired(&id);
                dropped.push(id);
            } else {
                println!(
                    "Retired key `{id}` is still needed: {codes} unused recovery code(s) hashed under it, {browsers} \
                     remembered browser(s) not seen since it was retired{}.",
                    if sessions_over {
                        ""
                    } else {
                        ", and sessions from before its retirement may still be alive (12 hours)"
                    }
                );
            }
        }
        if !dropped.is_empty() {
            self.write(keys)?;
            println!(
                "Dropped retired key(s) `{}` from {}: nothing made under them is left. Copy the key file to every \
                 instance.",
                dropped.join("`, `"),
                self.path.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created: i64, activated: Option<i64>, retired: Option<i64>) -> KeyRecord {
        KeyRecord {
            key_id: id.into(),
            fingerprint: String::new(),
            created_at: created,
            activated_at: activated,
            retired_at: retired,
        }
    }

    #[test]
    fn the_next_step_and_what_may_start() {
        let path = Path::new("latchkey.key");
        let mut keys = Keyring::ephemeral();
        let before = vec![record("k1", 1, Some(1), None)];
        assert!(state(&keys, before.clone()).added.is_none());
        assert!(check_on_start(&before, &keys, path).is_ok());

        keys.add_key("k2").unwrap();
        let added = vec![record("k1", 1, Some(1), None), record("k2", 5, None, None)];
        let st = state(&keys, added.clone());
        assert_eq!((st.added.as_deref(), st.older.len()), (Some("k2"), 0));
        assert!(check_on_start(&added, &keys, path).is_ok());

        let activated = vec![record("k1", 1, Some(1), None), record("k2", 5, Some(9), None)];
        assert!(
            check_on_start(&activated, &keys, path).is_ok(),
            "k1 active, k2 held: rolling"
        );
        assert!(
            check_on_start(&activated, &Keyring::ephemeral(), path).is_err(),
            "only the old key"
        );
        keys.activate("k2").unwrap();
        let st = state(&keys, activated.clone());
        assert_eq!((st.added, st.older), (None, vec!["k1".to_string()]));

        let retired = vec![record("k1", 1, Some(1), Some(12)), record("k2", 5, Some(9), None)];
        assert!(
            check_on_start(&retired, &keys, path).is_ok(),
            "k1's master still there: a warning"
        );
        let mut stale = Keyring::ephemeral();
        stale.add_key("k2").unwrap();
        assert!(
            check_on_start(&retired, &stale, path).is_err(),
            "the active key was retired"
        );
        // Made current in the same second: the newer key is the current one.
        let same = vec![record("k1", 1, Some(7), None), record("k2", 5, Some(7), None)];
        assert_eq!(server_keys::current(&same).unwrap().key_id, "k2");
    }
}
