// Written by hand to match migrations/*/…/up.sql (one schema for every backend).

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        created_at -> BigInt,
        last_login_at -> Nullable<BigInt>,
        totp_secret_sealed -> Nullable<Text>,
        totp_enabled_at -> Nullable<BigInt>,
        totp_last_step -> Nullable<BigInt>,
        must_change_password -> Bool,
        session_epoch -> BigInt,
        recovery_codes_generation -> BigInt,
    }
}

diesel::table! {
    mfa_enrolments (user_id) {
        user_id -> BigInt,
        secret_sealed -> Text,
        created_at -> BigInt,
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
    throttles (scope, key) {
        scope -> Text,
        key -> Text,
        failures -> Integer,
        last_failure -> BigInt,
        locked_until -> BigInt,
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

diesel::joinable!(mfa_enrolments -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    mfa_enrolments,
    recovery_codes,
    sessions,
    throttles,
    setup_tokens,
    security_events,
    server_keys,
    settings,
);

diesel::table! {
    server_keys (key_id) {
        key_id -> Text,
        fingerprint -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
        updated_at -> BigInt,
    }
}
