//! Security keys and passkeys (WebAuthn), with `webauthn-rs`.
//!
//! One registration ceremony serves both uses: it asks for a discoverable
//! credential (residentKey "preferred") with user verification "preferred"
//! (the security-key API, whose options we adjust — see `register_options`),
//! and stores the credential as the library serialises it (a `SecurityKey`),
//! keyed by its credential id. Then:
//! - after the password, any registered key is a second factor (user
//!   verification preferred);
//! - on `/login`, a discoverable credential *with* user verification signs
//!   in alone — possession plus PIN or biometric (the discoverable API
//!   requires UV); without it, the key can only be the second factor;
//! - the sudo prompt and Disable MFA accept a registered key.
//!
//! Every ceremony's server half is stored in the database between its two
//! requests (`db::ceremonies`): single use, five minutes, bound to what
//! started it. After every assertion the credential is stored as updated,
//! and a signature counter that does not move forward (when either the
//! stored or the new one is non-zero) is refused and logged as a possible
//! clone — checked again under the user's lock, so two assertions racing
//! with the same counter cannot both pass.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::Connection as _;
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, Credential, CredentialID, DiscoverableAuthentication,
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration,
    Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::{CredProtect, CredentialProtectionPolicy, ResidentKeyRequirement};

use super::factors::FactorUsed;
use super::sign_in::{CodeStep, Completion, SignedIn, complete};
use super::{Auth, AuthError, AuthResult, Client};
use crate::core::limits::{PENDING_MAX_ATTEMPTS, WEBAUTHN_CEREMONY_SECONDS};
use crate::core::recovery::RecoveryCode;
use crate::core::types::{CredentialId, UnixTime, UserId};
use crate::db::credentials::{self, Credential as Row, CredentialKind};
use crate::db::events::{self, Kind};
use crate::db::users::{self, User};
use crate::db::{Conn, DbError, ceremonies, pending};

/// What a ceremony is for; stored with it, so a challenge made for one
/// purpose cannot finish another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ceremony {
    Register,
    SecondStep,
    PasskeySignIn,
    /// Confirming a signed-in user (sudo mode, Disable MFA).
    Confirm,
}

impl Ceremony {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SecondStep => "second-step",
            Self::PasskeySignIn => "passkey",
            Self::Confirm => "confirm",
        }
    }
}

/// A ceremony's first half, for the browser: an id to send back and the
/// options for `navigator.credentials.create/get`.
#[derive(Debug, serde::Serialize)]
pub struct Challenge {
    pub ceremony: String,
    pub options: serde_json::Value,
}

/// Why a key was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Keys need a public URL with a domain name (`--public-url`).
    Unavailable,
    /// The user has no key (or none of theirs answered).
    NoKeys,
    /// The ceremony is unknown, used, expired, or someone else's.
    Expired,
    /// The browser's answer did not verify (wrong origin, signature, …).
    Refused,
    /// The signature counter went backwards: a cloned key?
    PossibleClone,
    /// A passkey sign-in needs user verification (PIN or biometric).
    NotVerified,
    /// This key is registered already.
    AlreadyRegistered,
}

/// What a successful registration did.
#[derive(Debug)]
pub struct Registered {
    pub id: CredentialId,
    /// When this key turned 2FA on: its recovery codes, to show once.
    pub codes: Option<Vec<RecoveryCode>>,
}

/// How a stored key is described on the MFA tab.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Backup-eligible: a synced passkey (in a password manager or a
    /// platform account) rather than bound to one device.
    pub synced: bool,
    pub user_verified: bool,
}

/// Build the relying party from the public URL: WebAuthn needs a domain
/// name (browsers refuse it on IP addresses), so an IP-address URL, or
/// none, gives `Err` with the reason.
pub fn relying_party(public_origin: Option<&str>, rp_name: &str) -> Result<Webauthn, String> {
    let Some(origin) = public_origin else {
        return Err("no --public-url is set; security keys and passkeys need the address people use, with a domain name (e.g. https://login.example.com, or http://localhost:8080 locally)".into());
    };
    let url = Url::parse(origin).map_err(|e| format!("--public-url {origin}: {e}"))?;
    let Some(domain) = url.domain() else {
        return Err(format!(
            "--public-url {origin} is an IP address; browsers allow security keys and passkeys only on a domain name (use e.g. http://localhost:PORT locally)"
        ));
    };
    WebauthnBuilder::new(domain, &url)
        .and_then(|b| b.rp_name(rp_name).build())
        .map_err(|e| format!("--public-url {origin}: {e:?}"))
}

fn hash(id: &str) -> String {
    crate::core::keys::hex(&Sha256::digest(id.as_bytes()))
}

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored key, as the library serialised it.
fn stored_key(row: &Row) -> AuthResult<SecurityKey> {
    let json = row
        .public_data
        .as_deref()
        .ok_or_else(|| AuthError::internal(anyhow::anyhow!("a WebAuthn credential without its data")))?;
    serde_json::from_str(json).map_err(AuthError::internal)
}

pub fn describe_key(row: &Row) -> Option<KeyInfo> {
    let key: SecurityKey = serde_json::from_str(row.public_data.as_deref()?).ok()?;
    let cred = Credential::from(key);
    Some(KeyInfo {
        synced: cred.backup_eligible,
        user_verified: cred.user_verified,
    })
}

fn refusal_of(e: &WebauthnError) -> KeyRefusal {
    match e {
        WebauthnError::CredentialPossibleCompromise => KeyRefusal::PossibleClone,
        WebauthnError::UserNotVerified => KeyRefusal::NotVerified,
        _ => KeyRefusal::Refused,
    }
}

/// Adjust the library's registration options to what SPEC §6 asks: a
/// discoverable credential if the authenticator can (residentKey
/// "preferred"), user verification "preferred" (the security-key API's
/// default), any authenticator (no "security-key" hint), and a credProtect
/// level that Chromium accepts with UV preferred (the library asks for
/// level 3, which Chromium refuses before asking any authenticator:
/// kanidm/webauthn-rs#490). None of these are checked when the
/// registration is finished, so editing them is safe.
fn register_options(mut ccr: CreationChallengeResponse) -> CreationChallengeResponse {
    if let Some(sel) = ccr.public_key.authenticator_selection.as_mut() {
        sel.resident_key = Some(ResidentKeyRequirement::Preferred);
        sel.require_resident_key = false;
    }
    ccr.public_key.hints = None;
    if let Some(ext) = ccr.public_key.extensions.as_mut() {
        ext.cred_protect = Some(CredProtect {
            credential_protection_policy: CredentialProtectionPolicy::UserVerificationOptionalWithCredentialIDList,
            enforce_credential_protection_policy: Some(false),
        });
    }
    ccr
}

fn options_json<T: serde::Serialize>(o: &T) -> AuthResult<serde_json::Value> {
    serde_json::to_value(o).map_err(AuthError::internal)
}

impl Auth {
    fn relying(&self) -> Option<&Webauthn> {
        self.webauthn.as_ref()
    }

    /// Whether keys can be used at all (a public URL with a domain name).
    pub fn keys_available(&self) -> bool {
        self.webauthn.is_some()
    }

    /// The user's keys.
    async fn keys_of(&self, user: UserId) -> AuthResult<Vec<Row>> {
        let rows = self.db.read(move |c| credentials::confirmed(c, user)).await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.kind() == Some(CredentialKind::WebAuthn))
            .collect())
    }

    /// Whether the user has a key (for the code prompt and the policy).
    pub async fn has_keys(&self, user: UserId) -> AuthResult<bool> {
        Ok(!self.keys_of(user).await?.is_empty())
    }

    async fn store_ceremony(
        &self,
        purpose: Ceremony,
        owner: &str,
        user: Option<UserId>,
        state: String,
        name: Option<String>,
    ) -> AuthResult<String> {
        let id = URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<24>());
        let (id_hash, owner, now) = (hash(&id), owner.to_string(), self.now());
        self.db
            .run(move |c| {
                ceremonies::insert(
                    c,
                    ceremonies::NewCeremony {
                        id_hash: &id_hash,
                        purpose: purpose.as_str(),
                        owner: &owner,
                        user,
                        state: &state,
                        name: name.as_deref(),
                        expires_at: now.plus(WEBAUTHN_CEREMONY_SECONDS),
                    },
                    now,
                )
            })
            .await?;
        Ok(id)
    }

    async fn take_ceremony(
        &self,
        purpose: Ceremony,
        owner: &str,
        ceremony: &str,
    ) -> AuthResult<Option<ceremonies::Taken>> {
        let (id_hash, owner, now) = (hash(ceremony), owner.to_string(), self.now());
        Ok(self
            .db
            .run(move |c| ceremonies::take(c, &id_hash, purpose.as_str(), &owner, now))
            .await?)
    }

    // ------------------------------------------------------------ register

    /// Begin adding a key named `name` for `user`, in the session whose
    /// public id is `owner`. (The caller has checked sudo mode.)
    pub async fn start_key_registration(
        &self,
        user: &User,
        owner: &str,
        name: &str,
    ) -> AuthResult<Result<Challenge, KeyRefusal>> {
        let Some(rp) = self.relying() else {
            return Ok(Err(KeyRefusal::Unavailable));
        };
        let candidate = Uuid::new_v4().to_string();
        let id = user.id;
        let handle = self.db.run(move |c| users::webauthn_handle(c, id, &candidate)).await?;
        let handle = Uuid::parse_str(&handle).map_err(AuthError::internal)?;
        let mut exclude: Vec<CredentialID> = vec![];
        for row in self.keys_of(user.id).await? {
            exclude.push(stored_key(&row)?.cred_id().clone());
        }
        let (ccr, state) = rp
            .start_securitykey_registration(
                handle,
                &user.username,
                &user.username,
                (!exclude.is_empty()).then_some(exclude),
                None,
                None,
            )
            .map_err(|e| AuthError::internal(anyhow::anyhow!("{e:?}")))?;
        let options = options_json(&register_options(ccr))?;
        let state = serde_json::to_string(&state).map_err(AuthError::internal)?;
        let ceremony = self
            .store_ceremony(Ceremony::Register, owner, Some(user.id), state, Some(name.to_string()))
            .await?;
        Ok(Ok(Challenge { ceremony, options }))
    }

    /// Finish adding a key: verify the browser's answer, store the key. The
    /// first factor of an account turns 2FA on, with recovery codes.
    pub async fn finish_key_registration(
        &self,
        user: &User,
        owner: &str,
        ceremony: &str,
        response: &RegisterPublicKeyCredential,
        client: &Client,
    ) -> AuthResult<Result<Registered, KeyRefusal>> {
        let Some(rp) = self.relying() else {
            return Ok(Err(KeyRefusal::Unavailable));
        };
        let Some((for_user, state, name)) = self.take_ceremony(Ceremony::Register, owner, ceremony).await? else {
            return Ok(Err(KeyRefusal::Expired));
        };
        if for_user != Some(user.id.0) {
            return Ok(Err(KeyRefusal::Expired));
        }
        let state: SecurityKeyRegistration = serde_json::from_str(&state).map_err(AuthError::internal)?;
        // A key the user registered already (the browser refuses it before
        // asking, from the excluded list; this answers a script that did not).
        let claimed = b64u(&response.raw_id);
        if let Some(existing) = self
            .db
            .read(move |c| credentials::find_by_external_id(c, &claimed))
            .await?
            && existing.user_id == user.id
        {
            return Ok(Err(KeyRefusal::AlreadyRegistered));
        }
        let key = match rp.finish_securitykey_registration(response, &state) {
            Ok(k) => k,
            Err(e) => {
                tracing::info!(error = ?e, "a key registration did not verify");
                return Ok(Err(KeyRefusal::Refused));
            }
        };
        let external_id = b64u(key.cred_id());
        let data = serde_json::to_string(&key).map_err(AuthError::internal)?;
        let name = name.unwrap_or_else(|| "Security key".into());
        let codes = RecoveryCode::generate_set();
        let hashes: Vec<String> = codes.iter().map(|c| self.keys.recovery_hash(c.canonical())).collect();
        let (user, client, now) = (user.clone(), client.clone(), self.now());
        let done = self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    users::lock(c, user.id)?;
                    let first = !credentials::has_confirmed(c, user.id)?;
                    let Some(id) = credentials::insert_webauthn(c, user.id, &name, &data, &external_id, now)? else {
                        return Ok(Err(KeyRefusal::AlreadyRegistered));
                    };
                    let mut e = client.event(Kind::FactorAdded, Some(&user));
                    e.detail = Some(format!("security key “{name}”"));
                    events::record(c, &e, now)?;
                    if first {
                        super::totp::turn_on(c, &user, &hashes, &client, now)?;
                    }
                    Ok(Ok((id, first)))
                })
            })
            .await?;
        Ok(done.map(|(id, first)| Registered {
            id,
            codes: first.then_some(codes),
        }))
    }

    // ---------------------------------------------------- the second step

    /// Begin the second step with a key for a pending sign-in. A protected
    /// sign-in gets a challenge that names no credential (the discoverable
    /// form), so the answer does not tell whether the password was right.
    pub async fn start_key_second_step(&self, pending_id: &str) -> AuthResult<Result<Challenge, KeyRefusal>> {
        let Some(rp) = self.relying() else {
            return Ok(Err(KeyRefusal::Unavailable));
        };
        let Some(row) = self.pending_sign_in(pending_id).await? else {
            return Ok(Err(KeyRefusal::Expired));
        };
        let owner = hash(pending_id);
        let keys = match (row.protected, row.user()) {
            (false, Some(user)) => self.keys_of(user).await?,
            _ => vec![],
        };
        if row.protected {
            let (rcr, state) = rp
                .start_discoverable_authentication()
                .map_err(|e| AuthError::internal(anyhow::anyhow!("{e:?}")))?;
            let state = serde_json::to_string(&(Some(state), None::<SecurityKeyAuthentication>))
                .map_err(AuthError::internal)?;
            let ceremony = self
                .store_ceremony(Ceremony::SecondStep, &owner, row.user(), state, None)
                .await?;
            return Ok(Ok(Challenge {
                ceremony,
                options: modal(options_json(&rcr)?),
            }));
        }
        if keys.is_empty() {
            return Ok(Err(KeyRefusal::NoKeys));
        }
        let keys: Vec<SecurityKey> = keys.iter().map(stored_key).collect::<AuthResult<_>>()?;
        let (rcr, state) = rp
            .start_securitykey_authentication(&keys)
            .map_err(|e| AuthError::internal(anyhow::anyhow!("{e:?}")))?;
        let state =
            serde_json::to_string(&(None::<DiscoverableAuthentication>, Some(state))).map_err(AuthError::internal)?;
        let ceremony = self
            .store_ceremony(Ceremony::SecondStep, &owner, row.user(), state, None)
            .await?;
        Ok(Ok(Challenge {
            ceremony,
            options: options_json(&rcr)?,
        }))
    }

    /// Finish the second step with a key. Failures count against the
    /// pending sign-in's five attempts (not the account's code counter: a
    /// signature cannot be guessed, and a lock run up by wrong codes does
    /// not stop a key).
    pub async fn finish_key_second_step(
        &self,
        pending_id: &str,
        ceremony: &str,
        response: &PublicKeyCredential,
        client: &Client,
        remember: bool,
    ) -> AuthResult<CodeStep> {
        let Some(rp) = self.relying() else {
            return Ok(CodeStep::Gone);
        };
        let Some(row) = self.pending_sign_in(pending_id).await? else {
            return Ok(CodeStep::Gone);
        };
        let owner = hash(pending_id);
        let taken = self.take_ceremony(Ceremony::SecondStep, &owner, ceremony).await?;
        let verified = match (taken, row.user()) {
            (Some((_, state, _)), Some(user)) => {
                let (disc, sk): (Option<DiscoverableAuthentication>, Option<SecurityKeyAuthentication>) =
                    serde_json::from_str(&state).map_err(AuthError::internal)?;
                self.verify_assertion(rp, user, response, disc, sk).await?
            }
            _ => Err(KeyRefusal::Refused),
        };
        let (pending_hash, now) = (hash(pending_id), self.now());
        match verified {
            Ok((user, cred, result)) => {
                let (client, token) = (client.clone(), self.new_browser_token(client));
                let remember = self.remember_request(remember).await?;
                let password_at = row.created_at;
                self.db
                    .run(move |c| {
                        c.transaction(|c| {
                            let Some(user) = users::lock_get(c, user.id)? else {
                                return Ok(CodeStep::Gone);
                            };
                            if !pending::delete(c, &pending_hash)? {
                                return Ok(CodeStep::Gone);
                            }
                            if let Err(refusal) = store_assertion(c, &user, &cred, &result, &client, now)? {
                                return Ok(refused_step(refusal));
                            }
                            let done = Completion {
                                user,
                                client: &client,
                                token,
                                factor: Some(FactorUsed::Key(cred.id)),
                                password_at,
                                remember,
                                remembered: false,
                            };
                            Ok(CodeStep::SignedIn(Box::new(complete(c, done, now)?)))
                        })
                    })
                    .await
                    .inspect(|step| {
                        if matches!(step, CodeStep::SignedIn(_)) {
                            crate::metrics::second_factor_check("security_key", "accepted");
                        }
                    })
                    .map_err(Into::into)
            }
            Err(refusal) => {
                let user = match row.user() {
                    Some(id) => self.find_user(id).await?,
                    None => None,
                };
                let client = client.clone();
                let step = self
                    .db
                    .run(move |c| {
                        c.transaction(|c| {
                            if !pending::take_attempt(c, &pending_hash, now, PENDING_MAX_ATTEMPTS)? {
                                pending::delete(c, &pending_hash)?;
                                return Ok(CodeStep::Gone);
                            }
                            let left =
                                pending::find(c, &pending_hash, now)?.map_or(0, |p| PENDING_MAX_ATTEMPTS - p.attempts);
                            if let Some(user) = &user {
                                log_refusal(c, user, refusal, &client, now)?;
                            }
                            if left > 0 {
                                return Ok(CodeStep::KeyRefused {
                                    refusal,
                                    attempts_left: left,
                                });
                            }
                            pending::delete(c, &pending_hash)?;
                            // As with five wrong codes: logged (and so mailed).
                            if let Some(user) = &user {
                                events::record(c, &client.event(Kind::SignInAbandoned, Some(user)), now)?;
                            }
                            Ok(CodeStep::Ended)
                        })
                    })
                    .await?;
                crate::metrics::second_factor_check("security_key", "wrong");
                Ok(step)
            }
        }
    }

    /// Check an assertion against `user`'s keys (either kind of state).
    async fn verify_assertion(
        &self,
        rp: &Webauthn,
        user: UserId,
        response: &PublicKeyCredential,
        disc: Option<DiscoverableAuthentication>,
        sk: Option<SecurityKeyAuthentication>,
    ) -> AuthResult<Result<(User, Row, AuthenticationResult), KeyRefusal>> {
        let cred_id = b64u(response.get_credential_id());
        let found = self
            .db
            .read(move |c| credentials::find_by_external_id(c, &cred_id))
            .await?;
        let Some(row) = found.filter(|r| r.user_id == user) else {
            return Ok(Err(KeyRefusal::Refused));
        };
        let Some(owner) = self.find_user(user).await? else {
            return Ok(Err(KeyRefusal::Refused));
        };
        let result = match (disc, sk) {
            (Some(state), _) => {
                let key = stored_key(&row)?;
                // The user handle the authenticator returns must be this user's.
                match rp.identify_discoverable_authentication(response) {
                    Ok((handle, _)) if Some(handle.to_string()) == owner.webauthn_handle => {}
                    _ => return Ok(Err(KeyRefusal::Refused)),
                }
                rp.finish_discoverable_authentication_v2(response, state, &key)
            }
            (None, Some(state)) => rp.finish_securitykey_authentication(response, &state),
            (None, None) => return Ok(Err(KeyRefusal::Refused)),
        };
        Ok(match result {
            Ok(r) => Ok((owner, row, r)),
            Err(e) => {
                tracing::info!(error = ?e, "a key assertion did not verify");
                Err(refusal_of(&e))
            }
        })
    }

    // ------------------------------------------------ passkey sign-in

    /// Begin a sign-in with a passkey alone (no username): `owner` is a
    /// nonce the signed-out browser's session keeps.
    pub async fn start_passkey_sign_in(&self, owner: &str) -> AuthResult<Result<Challenge, KeyRefusal>> {
        let Some(rp) = self.relying() else {
            return Ok(Err(KeyRefusal::Unavailable));
        };
        let (rcr, state) = rp
            .start_discoverable_authentication()
            .map_err(|e| AuthError::internal(anyhow::anyhow!("{e:?}")))?;
        let state = serde_json::to_string(&state).map_err(AuthError::internal)?;
        let ceremony = self
            .store_ceremony(Ceremony::PasskeySignIn, owner, None, state, None)
            .await?;
        // Kept as `conditional` (autofill); the page drops it for the button.
        Ok(Ok(Challenge {
            ceremony,
            options: options_json(&rcr)?,
        }))
    }

    /// Finish a passkey sign-in: the credential names its user; with user
    /// verification the sign-in is complete (and counts as the password for
    /// sudo mode).
    pub async fn finish_passkey_sign_in(
        &self,
        owner: &str,
        ceremony: &str,
        response: &PublicKeyCredential,
        client: &Client,
    ) -> AuthResult<Result<SignedIn, KeyRefusal>> {
        let Some(rp) = self.relying() else {
            return Ok(Err(KeyRefusal::Unavailable));
        };
        let Some((_, state, _)) = self.take_ceremony(Ceremony::PasskeySignIn, owner, ceremony).await? else {
            return Ok(Err(KeyRefusal::Expired));
        };
        let state: DiscoverableAuthentication = serde_json::from_str(&state).map_err(AuthError::internal)?;
        let Ok((handle, _)) = rp.identify_discoverable_authentication(response) else {
            return Ok(Err(KeyRefusal::Refused));
        };
        let handle = handle.to_string();
        let Some(user) = self
            .db
            .read(move |c| users::find_by_webauthn_handle(c, &handle))
            .await?
        else {
            return Ok(Err(KeyRefusal::Refused));
        };
        let verified = self.verify_assertion(rp, user.id, response, Some(state), None).await?;
        let now = self.now();
        let (user, cred, result) = match verified {
            Ok(v) => v,
            Err(refusal) => {
                let client = client.clone();
                self.db
                    .run(move |c| log_refusal(c, &user, refusal, &client, now))
                    .await?;
                return Ok(Err(refusal));
            }
        };
        let (client, token) = (client.clone(), self.new_browser_token(client));
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let Some(user) = users::lock_get(c, user.id)? else {
                        return Ok(Err(KeyRefusal::Refused));
                    };
                    if let Err(refusal) = store_assertion(c, &user, &cred, &result, &client, now)? {
                        return Ok(Err(refusal));
                    }
                    let done = Completion {
                        user,
                        client: &client,
                        token,
                        factor: Some(FactorUsed::Key(cred.id)),
                        // A passkey with user verification counts as the password.
                        password_at: now,
                        remember: None,
                        remembered: false,
                    };
                    Ok(Ok(complete(c, done, now)?))
                })
            })
            .await?)
    }

    // ------------------------------------------- confirming a signed-in user

    /// Begin confirming a signed-in user with one of their keys (sudo mode,
    /// Disable MFA); `owner` is the session's public id.
    pub async fn start_key_confirmation(&self, user: &User, owner: &str) -> AuthResult<Result<Challenge, KeyRefusal>> {
        let Some(rp) = self.relying() else {
            return Ok(Err(KeyRefusal::Unavailable));
        };
        let keys: Vec<SecurityKey> = self
            .keys_of(user.id)
            .await?
            .iter()
            .map(stored_key)
            .collect::<AuthResult<_>>()?;
        if keys.is_empty() {
            return Ok(Err(KeyRefusal::NoKeys));
        }
        let (rcr, state) = rp
            .start_securitykey_authentication(&keys)
            .map_err(|e| AuthError::internal(anyhow::anyhow!("{e:?}")))?;
        let state = serde_json::to_string(&state).map_err(AuthError::internal)?;
        let ceremony = self
            .store_ceremony(Ceremony::Confirm, owner, Some(user.id), state, None)
            .await?;
        Ok(Ok(Challenge {
            ceremony,
            options: options_json(&rcr)?,
        }))
    }

    /// Finish confirming with a key; with `then`, run it in the same commit
    /// (Disable MFA).
    pub async fn finish_key_confirmation<T, F>(
        &self,
        user: &User,
        owner: &str,
        ceremony: &str,
        response: &PublicKeyCredential,
        client: &Client,
        then: F,
    ) -> AuthResult<Result<T, KeyRefusal>>
    where
        F: FnOnce(&mut Conn) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let Some(rp) = self.relying() else {
            return Ok(Err(KeyRefusal::Unavailable));
        };
        let Some((for_user, state, _)) = self.take_ceremony(Ceremony::Confirm, owner, ceremony).await? else {
            return Ok(Err(KeyRefusal::Expired));
        };
        if for_user != Some(user.id.0) {
            return Ok(Err(KeyRefusal::Expired));
        }
        let state: SecurityKeyAuthentication = serde_json::from_str(&state).map_err(AuthError::internal)?;
        let now = self.now();
        let (owner_user, cred, result) = match self.verify_assertion(rp, user.id, response, None, Some(state)).await? {
            Ok(v) => v,
            Err(refusal) => {
                let (user, client) = (user.clone(), client.clone());
                self.db
                    .run(move |c| log_refusal(c, &user, refusal, &client, now))
                    .await?;
                return Ok(Err(refusal));
            }
        };
        let client = client.clone();
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    users::lock(c, owner_user.id)?;
                    if let Err(refusal) = store_assertion(c, &owner_user, &cred, &result, &client, now)? {
                        return Ok(Err(refusal));
                    }
                    Ok(Ok(then(c)?))
                })
            })
            .await?)
    }

    /// Rename one of the user's keys.
    pub async fn rename_key(&self, user: &User, id: CredentialId, name: &str, client: &Client) -> AuthResult<bool> {
        let (uid, name, now) = (user.id, name.to_string(), self.now());
        let mut e = client.event(Kind::KeyRenamed, Some(user));
        e.detail = Some(format!("now “{name}”"));
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let done = credentials::rename(c, uid, id, &name)?;
                    if done {
                        events::record(c, &e, now)?;
                    }
                    Ok(done)
                })
            })
            .await?)
    }
}

/// `{"publicKey": …}` without `mediation`: for a button, not autofill.
fn modal(mut options: serde_json::Value) -> serde_json::Value {
    if let Some(o) = options.as_object_mut() {
        o.remove("mediation");
    }
    options
}

fn refused_step(refusal: KeyRefusal) -> CodeStep {
    CodeStep::KeyRefused {
        refusal,
        attempts_left: 0,
    }
}

/// After a verified assertion, under the user's lock: the counter check
/// against what is stored *now*, and the credential stored as updated.
fn store_assertion(
    c: &mut Conn,
    user: &User,
    cred: &Row,
    result: &AuthenticationResult,
    client: &Client,
    now: UnixTime,
) -> Result<Result<(), KeyRefusal>, DbError> {
    let current = credentials::find_by_external_id(c, cred.external_id.as_deref().unwrap_or(""))?;
    let Some(current) = current.filter(|r| r.user_id == user.id) else {
        return Ok(Err(KeyRefusal::Refused));
    };
    let Some(Ok(mut key)) = current.public_data.as_deref().map(serde_json::from_str::<SecurityKey>) else {
        return Ok(Err(KeyRefusal::Refused));
    };
    let stored = Credential::from(key.clone()).counter;
    if (result.counter() > 0 || stored > 0) && result.counter() <= stored {
        log_refusal(c, user, KeyRefusal::PossibleClone, client, now)?;
        return Ok(Err(KeyRefusal::PossibleClone));
    }
    let data = if result.needs_update() {
        key.update_credential(result);
        serde_json::to_string(&key).ok()
    } else {
        None
    };
    credentials::record_use(c, current.id, data.as_deref(), now)?;
    Ok(Ok(()))
}

fn log_refusal(c: &mut Conn, user: &User, refusal: KeyRefusal, client: &Client, now: UnixTime) -> Result<(), DbError> {
    let mut e = client.event(Kind::KeyRefused, Some(user));
    e.detail = Some(
        match refusal {
            KeyRefusal::PossibleClone => "its signature counter went backwards: a possible clone of the key",
            KeyRefusal::NotVerified => "no user verification (PIN or biometric) for a passkey sign-in",
            _ => "the answer did not verify",
        }
        .into(),
    );
    events::record(c, &e, now)
}

/// A stored key for `fuzz_check` (made by the tests' software authenticator).
const FUZZ_KEY: &str = r#"{"cred":{"cred_id":"nc-XoYTzJiPRGnMSTOuZpXCbCDch6HihbXj1lnGLp7I","cred":{"type_":"ES256","key":{"EC_EC2":{"curve":"SECP256R1","x":"sGT9qXnlx19ORntJBoejjYq2V_g56MgFqSDFtMV0NRw","y":"1J1PkPdkwglb8U6ltsZovXWHXMGui12Ibnl5TRiZfRU"}}},"counter":1,"transports":null,"user_verified":true,"backup_eligible":true,"backup_state":false,"registration_policy":"preferred","extensions":{"cred_protect":"Ignored","hmac_create_secret":"NotRequested","appid":"NotRequested","cred_props":{"Unsigned":{"rk":true}}},"attestation":{"data":"None","metadata":"None"},"attestation_format":"none"}}"#;

/// The fuzz target's property (fuzz/fuzz_targets/webauthn_json.rs, and its
/// corpus replayed in the test suite): any bytes, taken as a registration
/// answer and as an assertion, parse and verify against real ceremony
/// states to `Ok` or an error — never a panic.
pub fn fuzz_check(data: &[u8]) {
    use std::sync::OnceLock;
    static STATES: OnceLock<(Webauthn, String, String, SecurityKey)> = OnceLock::new();
    let (rp, reg_state, auth_state, key) = STATES.get_or_init(|| {
        let rp = relying_party(Some("http://localhost:8080"), "fuzz").expect("a relying party");
        let (_, reg) = rp
            .start_securitykey_registration(Uuid::nil(), "fuzz", "fuzz", None, None, None)
            .expect("a registration");
        let (_, disc) = rp.start_discoverable_authentication().expect("an authentication");
        // A stored key to check assertions against (any valid one).
        let key: SecurityKey = serde_json::from_str(FUZZ_KEY).expect("the fuzz key");
        (
            rp,
            serde_json::to_string(&reg).expect("state"),
            serde_json::to_string(&disc).expect("state"),
            key,
        )
    });
    if let Ok(reg) = serde_json::from_slice::<RegisterPublicKeyCredential>(data) {
        let state: SecurityKeyRegistration = serde_json::from_str(reg_state).expect("state");
        let _ = rp.finish_securitykey_registration(&reg, &state);
    }
    if let Ok(assertion) = serde_json::from_slice::<PublicKeyCredential>(data) {
        let _ = rp.identify_discoverable_authentication(&assertion);
        let state: DiscoverableAuthentication = serde_json::from_str(auth_state).expect("state");
        let _ = rp.finish_discoverable_authentication_v2(&assertion, state, key);
    }
}
