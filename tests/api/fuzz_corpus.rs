//! The fuzz corpus replayed as regression tests: every input under
//! fuzz/corpus/<target>/ (the seeds, and any crash the fuzzer ever found,
//! which is added there) must satisfy the same properties as the fuzz
//! targets in fuzz/fuzz_targets/.

use std::collections::HashMap;
use std::path::Path;

use latchkey::core::recovery::RecoveryCode;
use latchkey::core::totp::TotpCode;
use latchkey::web::error::AppError;
use latchkey::web::forms::parse_form;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "{target}: empty corpus");
    inputs
}

#[test]
fn code_parser_corpus() {
    for data in corpus("code_parser") {
        let Ok(input) = std::str::from_utf8(&data) else {
            continue;
        };
        let cleaned: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
        let expected = cleaned.len() == 6 && cleaned.bytes().all(|b| b.is_ascii_digit());
        assert_eq!(TotpCode::parse(input).is_some(), expected, "{input:?}");
    }
}

#[test]
fn recovery_code_parser_corpus() {
    for data in corpus("recovery_code_parser") {
        let Ok(input) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Some(code) = RecoveryCode::parse(input) {
            assert_eq!(RecoveryCode::parse(&code.display()), Some(code));
        }
    }
}

#[test]
fn form_corpus() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
        next: Option<String>,
    }
    for data in corpus("form") {
        for result in [
            parse_form::<Login>(&data).map(|_| ()),
            parse_form::<HashMap<String, String>>(&data).map(|_| ()),
        ] {
            assert!(
                matches!(result, Ok(()) | Err(AppError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }
}

#[test]
fn webauthn_json_corpus() {
    for data in corpus("webauthn_json") {
        latchkey::auth::webauthn::fuzz_check(&data);
    }
}
