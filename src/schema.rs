// Written by hand to match migrations/*/…/up.sql (one schema for every backend).
// Columns and tables kept only for the previous release's instances
// (users.totp_*, mfa_enrolments) are left out, so nothing here uses them.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        created_at -> BigInt,
        last_login_at -> Nullable<BigInt>,
        must_change_password -> Bool,
        session_epoch -> BigInt,
        recovery_codes_generation -> BigInt,
        webauthn_handle -> Nullable<Text>,
        mfa_epoch -> BigInt,
        email -> Nullable<Text>,
        email_verified_at -> Nullable<BigInt>,
        notify_new_browser -> Bool,
        last_sign_in_event -> Nullable<BigInt>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        #[sql_name = "ref"]
        reference -> Text,
        user_id -> Nullable<BigInt>,
        kind -> Text,
        to_address -> Text,
        detail -> Nullable<Text>,
        client_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> BigInt,
        next_attempt_at -> BigInt,
        attempts -> Integer,
        claimed_until -> Nullable<BigInt>,
        sent_at -> Nullable<BigInt>,
        failed_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        link_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webauthn_ceremonies (id_hash) {
        id_hash -> Text,
        purpose -> Text,
        owner -> Text,
        user_id -> Nullable<BigInt>,
        state -> Text,
        name -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    credentials (id) {
        id -> BigInt,
        user_id -> BigInt,
        kind -> Text,
        name -> Text,
        secret_sealed -> Nullable<Text>,
        public_data -> Nullable<Text>,
        external_id -> Nullable<Text>,
        created_at -> BigInt,
        confirmed_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
        last_step -> Nullable<BigInt>,
        pending_owner -> Nullable<Text>,
        attempts -> Integer,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> Nullable<BigInt>,
        state -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    pending_sign_ins (id_hash) {
        id_hash -> Text,
        user_id -> Nullable<BigInt>,
        created_at -> BigInt,
        expires_at -> BigInt,
        attempts -> Integer,
        protected -> Bool,
        client_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    known_browsers (id) {
        id -> BigInt,
        user_id -> BigInt,
        token_hash -> Text,
        created_at -> BigInt,
        last_used_at -> BigInt,
        expires_at -> BigInt,
        user_agent -> Nullable<Text>,
        client_address -> Nullable<Text>,
        remember_hash -> Nullable<Text>,
        remembered_at -> Nullable<BigInt>,
        remembered_epoch -> Nullable<BigInt>,
    }
}

diesel::table! {
    throttles (scope, key) {
        scope -> Text,
        key -> Text,
        failures -> Integer,
        last_failure -> BigInt,
        locked_until -> BigInt,
        account -> Nullable<Text>,
    }
}

diesel::table! {
    rate_buckets (scope, key) {
        scope -> Text,
        key -> Text,
        account -> Nullable<Text>,
        tokens -> Integer,
        refilled_at -> BigInt,
    }
}

diesel::table! {
    setup_tokens (token_hash) {
        token_hash -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    security_events (id) {
        id -> BigInt,
        created_at -> BigInt,
        user_id -> Nullable<BigInt>,
        username -> Nullable<Text>,
        kind -> Text,
        client_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    server_keys (key_id) {
        key_id -> Text,
        fingerprint -> Text,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
        updated_at -> BigInt,
    }
}

diesel::joinable!(credentials -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(known_browsers -> users (user_id));
diesel::joinable!(outbox -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    outbox,
    credentials,
    recovery_codes,
    sessions,
    pending_sign_ins,
    known_browsers,
    throttles,
    rate_buckets,
    setup_tokens,
    security_events,
    server_keys,
    settings,
    webauthn_ceremonies,
);
