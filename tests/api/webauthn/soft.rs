//! A software authenticator for the server-side WebAuthn tests: one ES256
//! credential, "none" attestation, and free choice of the flags (user
//! verification, backup) and the signature counter. It answers with the
//! JSON the page's script sends, so the tests speak to the server exactly
//! as a browser does. (Written here, ~100 lines, because the published
//! software authenticators cannot return a user handle or set flags.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub struct SoftKey {
    key: SigningKey,
    pub cred_id: Vec<u8>,
    user_handle: Vec<u8>,
    rp_id: String,
    pub origin: String,
    pub counter: u32,
    /// User verification (PIN or biometric) on every use.
    pub uv: bool,
    /// Backup-eligible (a synced passkey).
    pub be: bool,
}

fn bytes(v: &Value) -> Vec<u8> {
    B64U.decode(v.as_str().expect("base64url string")).expect("base64url")
}

impl SoftKey {
    /// A key for the site at `origin` (`http://localhost:PORT`), made from
    /// `seed` (different seeds, different keys).
    pub fn new(seed: u8, origin: &str) -> Self {
        let key = SigningKey::from_slice(&Sha256::digest([seed, 42])).unwrap();
        let rp_id = origin
            .split("://")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string();
        Self {
            key,
            cred_id: Sha256::digest([seed, 1]).to_vec(),
            user_handle: vec![],
            rp_id,
            origin: origin.into(),
            counter: 0,
            uv: true,
            be: false,
        }
    }

    pub fn id(&self) -> String {
        B64U.encode(&self.cred_id)
    }

    fn auth_data(&self, attested: Option<Vec<u8>>) -> Vec<u8> {
        let mut flags = 0x01; // user present
        if self.uv {
            flags |= 0x04;
        }
        if self.be {
            flags |= 0x08;
        }
        if attested.is_some() {
            flags |= 0x40;
        }
        let mut d = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        d.push(flags);
        d.extend_from_slice(&self.counter.to_be_bytes());
        if let Some(cose) = attested {
            d.extend_from_slice(&[0u8; 16]); // AAGUID
            d.extend_from_slice(&(self.cred_id.len() as u16).to_be_bytes());
            d.extend_from_slice(&self.cred_id);
            d.extend_from_slice(&cose);
        }
        d
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let xy = &point.as_bytes()[1..];
        let mut m = BTreeMap::new();
        m.insert(Cbor::Integer(1), Cbor::Integer(2)); // EC2
        m.insert(Cbor::Integer(3), Cbor::Integer(-7)); // ES256
        m.insert(Cbor::Integer(-1), Cbor::Integer(1)); // P-256
        m.insert(Cbor::Integer(-2), Cbor::Bytes(xy[..32].to_vec()));
        m.insert(Cbor::Integer(-3), Cbor::Bytes(xy[32..].to_vec()));
        serde_cbor_2::to_vec(&Cbor::Map(m)).unwrap()
    }

    fn client_data(&self, ty: &str, challenge: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": ty, "challenge": B64U.encode(challenge), "origin": self.origin, "crossOrigin": false
        }))
        .unwrap()
    }

    fn sign(&self, auth_data: &[u8], client_data: &[u8]) -> String {
        let mut msg = auth_data.to_vec();
        msg.extend_from_slice(&Sha256::digest(client_data));
        let sig: Signature = self.key.sign(&msg);
        B64U.encode(sig.to_der().as_bytes())
    }

    /// `navigator.credentials.create(options)`, as the page's script sends it.
    pub fn register(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        self.user_handle = bytes(&pk["user"]["id"]);
        let cdj = self.client_data("webauthn.create", &bytes(&pk["challenge"]));
        let auth_data = self.auth_data(Some(self.cose_key()));
        let mut ao = BTreeMap::new();
        ao.insert(Cbor::Text("fmt".into()), Cbor::Text("none".into()));
        ao.insert(Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new()));
        ao.insert(Cbor::Text("authData".into()), Cbor::Bytes(auth_data));
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "attestationObject": B64U.encode(serde_cbor_2::to_vec(&Cbor::Map(ao)).unwrap()),
                "clientDataJSON": B64U.encode(&cdj),
                "transports": ["usb"],
            },
            "extensions": { "credProps": { "rk": true } },
        })
    }

    /// `navigator.credentials.get(options)`: the counter moves on by one,
    /// as a real key's does.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.answer(options)
    }

    /// An assertion with the counter as it is (a cloned key replays an old one).
    pub fn answer(&self, options: &Value) -> Value {
        let cdj = self.client_data("webauthn.get", &bytes(&options["publicKey"]["challenge"]));
        let auth_data = self.auth_data(None);
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "authenticatorData": B64U.encode(&auth_data),
                "clientDataJSON": B64U.encode(&cdj),
                "signature": self.sign(&auth_data, &cdj),
                "userHandle": B64U.encode(&self.user_handle),
            },
            "extensions": {},
        })
    }
}
