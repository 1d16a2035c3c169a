//! What a deployment relies on: one self-contained binary (libpq and
//! OpenSSL built in, TLS to PostgreSQL), the container image's Dockerfile
//! and compose file consistent with the build, the healthcheck command, and
//! the systemd unit passing `systemd-analyze verify`.
//!
//! The image itself is built on a machine with registry access (`podman
//! build`); here base images cannot be pulled, so the Dockerfile is checked
//! against the build rather than run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;
use crate::ops_support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared libraries an ELF binary names (`NEEDED`), by readelf.
fn needed(binary: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["--dynamic", "--wide"])
        .arg(binary)
        .output()
        .expect("readelf is installed (binutils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

/// The binary links no libpq, libssl or libcrypto: `cargo run --release`
/// builds without libpq-dev or libssl-dev, and runs without libpq5. The
/// release build is checked too when there is one (CI makes it first).
#[test]
fn the_binary_needs_no_libpq_or_openssl() {
    let mut binaries = vec![PathBuf::from(env!("CARGO_BIN_EXE_latchkey"))];
    let release = repo().join("target/release/latchkey");
    if release.is_file() {
        binaries.push(release);
    }
    for binary in binaries {
        let libs = needed(&binary);
        assert!(libs.iter().any(|l| l.starts_with("libc.so")), "{libs:?}");
        for l in &libs {
            assert!(
                !["libpq", "libssl", "libcrypto"].iter().any(|bad| l.starts_with(bad)),
                "{} needs {l}: {libs:?}",
                binary.display()
            );
        }
    }
}

/// `sslmode=require` is understood by the built-in libpq, and the
/// connection really is TLS (the local server has TLS on, as Debian's does;
/// where it is off, libpq must say so in words about SSL, not refuse the
/// option).
#[tokio::test]
async fn postgres_with_sslmode_require() {
    if !testing_postgres() {
        return;
    }
    use diesel::RunQueryDsl;
    let pg = PgTestDatabase::create();
    let url = format!("{}?sslmode=require", pg.url);
    let mut admin = pg_connect(&pg.url);
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        ssl: String,
    }
    let server_tls = diesel::sql_query("SHOW ssl")
        .get_result::<Setting>(&mut admin)
        .unwrap()
        .ssl
        == "on";
    let dir = tempfile::tempdir().unwrap();
    let out = latchkey(dir.path(), &url, &dir.path().join("k.key"), &["user", "list"]);
    if server_tls {
        assert!(out.status.success(), "sslmode=require: {}", text(&out));
        #[derive(diesel::QueryableByName)]
        struct Tls {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            ssl: bool,
        }
        let mut c = pg_connect(&url);
        let tls = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .get_result::<Tls>(&mut c)
            .unwrap();
        assert!(tls.ssl, "the connection is encrypted");
        // Verifying the certificate is compiled in too: without a CA file
        // libpq says which file it wanted.
        let strict = format!("{}?sslmode=verify-full", pg.url);
        let out = latchkey(dir.path(), &strict, &dir.path().join("k.key"), &["user", "list"]);
        assert!(!out.status.success());
        assert!(text(&out).contains("root certificate"), "{}", text(&out));
    } else {
        assert!(!out.status.success());
        let said = text(&out);
        assert!(said.contains("SSL") && !said.contains("invalid sslmode"), "{said}");
    }
    let bogus = format!("{}?sslmode=bogus", pg.url);
    let out = latchkey(dir.path(), &bogus, &dir.path().join("k.key"), &["user", "list"]);
    assert!(text(&out).contains("invalid sslmode"), "{}", text(&out));
}

/// `latchkey healthcheck` exits 0 against a live server and fails without one.
#[tokio::test]
async fn healthcheck_command() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = binary_database(dir.path());
    let key = dir.path().join("latchkey.key");
    let server = serve(dir.path(), &url, &key, &[], &[]);
    let bind = server.base.trim_start_matches("http://").to_string();
    let ok = latchkey(dir.path(), &url, &key, &["healthcheck", "--bind", &bind]);
    assert!(ok.status.success(), "{}", text(&ok));
    // A wildcard bind is checked on loopback.
    let port = bind.rsplit(':').next().unwrap();
    let ok = latchkey(
        dir.path(),
        &url,
        &key,
        &["healthcheck", "--bind", &format!("0.0.0.0:{port}")],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    server.stop();
    let down = latchkey(dir.path(), &url, &key, &["healthcheck", "--bind", &bind]);
    assert!(!down.status.success());
    assert!(text(&down).contains(&bind), "{}", text(&down));
}

/// A Dockerfile instruction with its continuation lines joined.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut pending = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let (word, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
        out.push((word.to_uppercase(), rest.trim().to_string()));
        pending.clear();
    }
    out
}

fn json_words(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not exec form ({e}): {s}"))
}

/// What the final stage of the Dockerfile sets up.
struct Image {
    binary: String,
    entrypoint: Vec<String>,
    healthcheck: Vec<String>,
    env: std::collections::HashMap<String, String>,
    volume: String,
    exposed: u16,
    user: String,
    data_owner: String,
}

fn image() -> Image {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let all = instructions(&text);
    let froms: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, (w, _))| w == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(froms.len(), 2, "two stages: build and run");
    let (build, run) = (&all[froms[0]..froms[1]], &all[froms[1]..]);
    assert!(build[0].1.ends_with(" AS build"), "{:?}", build[0]);
    // The build stage builds this package's release binary with the lock file.
    let runs: Vec<&String> = build.iter().filter(|(w, _)| w == "RUN").map(|(_, r)| r).collect();
    assert!(runs.iter().any(|r| r.contains("cargo build --release --locked")));
    let install = runs
        .iter()
        .find(|r| r.contains("target/release/latchkey"))
        .expect("the build stage installs target/release/latchkey");
    let staged = install
        .split("target/release/latchkey ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // Its Rust is at least the crate's rust-version.
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let image_rust = build[0].1.split(":").nth(1).unwrap().split('-').next().unwrap();
    let parse = |v: &str| v.split('.').map(|n| n.parse::<u32>().unwrap()).collect::<Vec<_>>();
    assert!(
        parse(image_rust) >= parse(&rust_version),
        "rust {image_rust} < {rust_version}"
    );
    // The dependency layer's stand-in sources satisfy the manifest (every
    // bench it names has a file), or `cargo build` fails there.
    let stand_ins = runs
        .iter()
        .find(|r| r.starts_with("mkdir -p src"))
        .expect("dependency layer");
    let prepare = stand_ins.split("&& cargo build").next().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    for f in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(repo().join(f), scratch.path().join(f)).unwrap();
    }
    let ok = Command::new("sh")
        .arg("-c")
        .arg(prepare)
        .current_dir(scratch.path())
        .status()
        .unwrap();
    assert!(ok.success());
    let meta = Command::new("cargo")
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1"])
        .current_dir(scratch.path())
        .output()
        .unwrap();
    assert!(
        meta.status.success(),
        "stand-ins: {}",
        String::from_utf8_lossy(&meta.stderr)
    );

    let mut img = Image {
        binary: String::new(),
        entrypoint: vec![],
        healthcheck: vec![],
        env: Default::default(),
        volume: String::new(),
        exposed: 0,
        user: String::new(),
        data_owner: String::new(),
    };
    for (word, rest) in run {
        match word.as_str() {
            "COPY" if rest.contains(&staged) => {
                assert!(rest.starts_with("--from=build "), "{rest}");
                img.binary = rest.split_whitespace().last().unwrap().to_string();
            }
            "COPY" if rest.contains("/data") => {
                img.data_owner = rest
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("--chown="))
                    .unwrap_or_default()
                    .to_string();
                assert!(rest.ends_with(" /data"), "{rest}");
            }
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').unwrap();
                    img.env.insert(k.to_string(), v.to_string());
                }
            }
            "VOLUME" => img.volume = json_words(rest)[0].clone(),
            "EXPOSE" => img.exposed = rest.parse().unwrap(),
            "USER" => img.user = rest.clone(),
            "HEALTHCHECK" => img.healthcheck = json_words(rest.split(" CMD ").nth(1).unwrap()),
            "ENTRYPOINT" => img.entrypoint = json_words(rest),
            _ => {}
        }
    }
    img
}

/// The Dockerfile agrees with the build and with itself: the binary it
/// copies is the one the build makes and the one it runs; the port it
/// exposes is the one it listens on; database and key file are on the
/// volume, owned by the (non-root) user it runs as; the health check is
/// the `healthcheck` command of that binary.
#[test]
fn dockerfile_is_consistent_with_the_build() {
    let img = image();
    let name = Path::new(env!("CARGO_BIN_EXE_latchkey"))
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(Path::new(&img.binary).file_name().unwrap(), name);
    assert_eq!(img.entrypoint, vec![img.binary.clone()]);
    assert_eq!(img.healthcheck, vec![img.binary.clone(), "healthcheck".to_string()]);
    let bind = &img.env["LATCHKEY_BIND"];
    assert_eq!(bind.rsplit(':').next().unwrap().parse::<u16>().unwrap(), img.exposed);
    let db = img.env["DATABASE_URL"]
        .strip_prefix("sqlite://")
        .expect("SQLite by default");
    assert!(db.starts_with(&format!("{}/", img.volume)), "{db} on {}", img.volume);
    assert!(img.env["LATCHKEY_KEY_FILE"].starts_with(&format!("{}/", img.volume)));
    let uid = img.user.split(':').next().unwrap();
    assert_ne!(uid, "0");
    assert_ne!(uid, "root");
    assert_eq!(
        img.data_owner, img.user,
        "the volume belongs to the user the server runs as"
    );
    // Every setting the image gives is a real flag's environment variable,
    // and the commands it runs exist.
    let help = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    for var in img.env.keys() {
        assert!(help.contains(&format!("env: {var}")), "{var} is not a setting");
    }
    for cmd in [["healthcheck", "--help"], ["serve", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_latchkey")).args(cmd).output().unwrap();
        assert!(out.status.success(), "latchkey {cmd:?}");
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "the build context leaves target/ out"
    );
}

/// The compose file parses (docker-compose, from Debian, resolves it) and
/// wires Latchkey to its PostgreSQL and to the image's paths and port.
#[test]
fn compose_file_parses_and_matches_the_image() {
    let out = Command::new("docker-compose")
        .args(["--file", "compose.yaml", "config"])
        .current_dir(repo())
        .env("POSTGRES_PASSWORD", "s3cret")
        .env_remove("LATCHKEY_PUBLIC_URL")
        .output()
        .expect("docker-compose is installed (apt-get install docker-compose)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut to_json = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with yaml (a dependency of docker-compose)");
    use std::io::Write;
    to_json.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let json = to_json.wait_with_output().unwrap();
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let (app, db) = (&v["services"]["latchkey"], &v["services"]["db"]);
    let denv = &db["environment"];
    let url = format!(
        "postgres://{}:{}@db:5432/{}",
        denv["POSTGRES_USER"].as_str().unwrap(),
        denv["POSTGRES_PASSWORD"].as_str().unwrap(),
        denv["POSTGRES_DB"].as_str().unwrap()
    );
    assert_eq!(denv["POSTGRES_PASSWORD"], "s3cret");
    let env = &app["environment"];
    assert_eq!(env["DATABASE_URL"], url.as_str());
    assert_eq!(app["depends_on"]["db"]["condition"], "service_healthy");
    let img = image();
    assert_eq!(env["LATCHKEY_BIND"], img.env["LATCHKEY_BIND"].as_str());
    let key = env["LATCHKEY_KEY_FILE"].as_str().unwrap();
    let volumes = app["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().any(|m| m["target"] == img.volume.as_str()
            || m.as_str()
                .is_some_and(|s| s.split(':').nth(1) == Some(img.volume.as_str()))),
        "the image's volume is mounted: {volumes:?}"
    );
    assert!(key.starts_with(&format!("{}/", img.volume)));
    let ports = app["ports"].as_array().unwrap();
    assert!(
        ports.iter().any(|p| p["target"] == img.exposed
            || p.as_str().is_some_and(
                |s| s.trim_end_matches("/tcp").rsplit(':').next() == Some(img.exposed.to_string().as_str())
            )),
        "{ports:?}"
    );
    let test: Vec<String> = serde_json::from_value(app["healthcheck"]["test"].clone()).unwrap();
    assert_eq!(test[1..], img.healthcheck[..]);
    // The metrics listener it configures is a real setting.
    assert!(env["LATCHKEY_METRICS_BIND"].is_string());
}

/// The systemd unit passes `systemd-analyze verify` (with ExecStart
/// pointed at the binary built here, since verify wants it to exist), and
/// has the hardening it promises.
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(repo().join("docs/deploy/latchkey.service")).unwrap();
    for setting in [
        "DynamicUser=yes",
        "StateDirectory=latchkey",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "ExecStart=/usr/local/bin/latchkey serve",
    ] {
        assert!(unit.lines().any(|l| l == setting), "{setting}");
    }
    // The paths it gives are in its state directory.
    assert!(unit.contains("DATABASE_URL=sqlite:///var/lib/latchkey/"));
    assert!(unit.contains("LATCHKEY_KEY_FILE=/var/lib/latchkey/"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/latchkey", env!("CARGO_BIN_EXE_latchkey")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(!said.contains("latchkey.service:"), "warnings about the unit: {said}");
}
