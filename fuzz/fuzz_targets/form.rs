//! Form parsing on arbitrary bodies: a parsed form or a 400, never a panic
//! or another error.
#![no_main]

use std::collections::HashMap;

use latchkey::web::error::AppError;
use latchkey::web::forms::parse_form;
use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Login {
    username: String,
    password: String,
    next: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    match parse_form::<Login>(data) {
        Ok(_) | Err(AppError::BadRequest(_)) => {}
        Err(other) => panic!("unexpected {other:?}"),
    }
    match parse_form::<HashMap<String, String>>(data) {
        Ok(_) | Err(AppError::BadRequest(_)) => {}
        Err(other) => panic!("unexpected {other:?}"),
    }
});
