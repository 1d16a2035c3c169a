//! Browser-driven end-to-end tests: Debian's Chromium, driven through
//! chromedriver by `thirtyfour`, against the real server of `TestApp::spawn()`.
//!
//! Every page of a journey is audited with axe-core (fetched from the npm
//! registry into `target/axe/`, never committed) and saved as a PNG under
//! `target/screenshots/<test>/`. `scripts/screenshots` sets
//! `LATCHKEY_DOCS_SCREENSHOTS` to also write the pictures the README shows.
//!
//! Without chromium/chromedriver the tests say so and pass, except in CI
//! (`CI` set), where a browser test that cannot run is a failure.

mod admin;
mod email;
mod journey;
mod keyboard;
mod messages;
mod polish;
mod webauthn;

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Once};
use std::time::Duration;

use thirtyfour::extensions::query::ElementPollerWithTimeout;
use thirtyfour::prelude::*;
use tokio::sync::Mutex;

/// One Chromium at a time: the machines this runs on have two cores.
static ONE_BROWSER: Mutex<()> = Mutex::const_new(());

const INSTALL_HINT: &str = "sudo apt-get install -y chromium chromium-driver nodejs npm";

/// The pictures `scripts/screenshots` copies to docs/screenshots (step → file).
const DOC_SHOTS: &[(&str, &str)] = &[
    ("login", "login"),
    ("two-factor", "code-prompt"),
    ("mfa-setup", "mfa-setup"),
    ("recovery-codes", "recovery-codes"),
    ("mfa-enabled", "mfa-enabled"),
    ("webauthn-keys", "security-keys"),
    ("login-with-passkey", "login-passkey"),
    ("admin-users", "admin-users"),
    ("phone-mfa-setup", "phone-mfa-setup"),
    ("phone-recovery-codes", "phone-recovery-codes"),
    ("phone-mfa-enabled", "phone-mfa-enabled"),
    ("phone-mfa-disable", "phone-mfa-disable"),
    ("phone-dashboard", "phone-dashboard"),
    ("phone-profile", "phone-profile"),
    ("phone-sessions", "phone-sessions"),
    ("phone-security-log", "phone-security-log"),
    ("phone-admin-users", "phone-admin-users"),
    ("phone-admin-security-log", "phone-admin-security-log"),
    ("phone-not-found", "phone-not-found"),
];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

pub(super) struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// The browser and its driver (`LATCHKEY_CHROMIUM` / `LATCHKEY_CHROMEDRIVER`
/// override the search on `PATH`), plus npm unless axe-core is already here.
pub(super) fn find_tools() -> Result<Tools, String> {
    // A path in the environment is the only candidate, and must exist.
    let find = |var: &str, names: &[&str]| match std::env::var_os(var) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => on_path(names),
    };
    let chromium = find("LATCHKEY_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find("LATCHKEY_CHROMEDRIVER", &["chromedriver"]);
    let mut missing = vec![];
    if chromium.is_none() {
        missing.push("chromium");
    }
    if chromedriver.is_none() {
        missing.push("chromedriver");
    }
    if !axe_path().is_file() && on_path(&["npm"]).is_none() {
        missing.push("npm (to fetch axe-core)");
    }
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) if missing.is_empty() => Ok(Tools { chromium, chromedriver }),
        _ => Err(missing.join(", ")),
    }
}

/// The tools, or `None` after saying clearly that this test was skipped.
/// In CI a missing browser fails the test instead.
fn tools_or_skip(test: &str) -> Option<Tools> {
    match find_tools() {
        Ok(tools) => Some(tools),
        Err(missing) if in_ci() => {
            panic!("browser test {test} cannot run in CI: {missing} not found. Install with: {INSTALL_HINT}")
        }
        Err(missing) => {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                // Straight to stderr, past the test harness's output capture.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nSKIPPED: the browser tests need {missing}, which this machine lacks.\n         \
                     Install with: {INSTALL_HINT}\n"
                );
            });
            None
        }
    }
}

fn axe_path() -> PathBuf {
    if let Some(p) = std::env::var_os("LATCHKEY_AXE_JS") {
        return PathBuf::from(p);
    }
    manifest_dir().join("target/axe/package/axe.min.js")
}

/// axe-core's source, fetched once with `npm pack axe-core@4` into target/axe.
fn axe_source() -> String {
    static FETCH: StdMutex<()> = StdMutex::new(());
    let _once = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let path = axe_path();
    if !path.is_file() {
        let dir = manifest_dir().join("target/axe");
        std::fs::create_dir_all(&dir).expect("create target/axe");
        let out = Command::new("npm")
            .args(["pack", "axe-core@4", "--silent", "--pack-destination"])
            .arg(&dir)
            .output()
            .expect("run npm pack axe-core@4");
        assert!(
            out.status.success(),
            "npm pack axe-core@4 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tarball = String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(dir.join(&tarball))
            .arg("-C")
            .arg(&dir)
            .status()
            .expect("run tar");
        assert!(status.success(), "could not unpack {tarball}");
    }
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// chromedriver on a port of its own choosing; killed (with its process
/// group, so any Chromium it left behind too) when dropped — also when the
/// test panics.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start(binary: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(binary)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Read the port from the banner, then keep draining the pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            for line in lines.by_ref() {
                let port = line
                    .strip_prefix("ChromeDriver was started successfully on port ")
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok());
                if let Some(port) = port {
                    let _ = tx.send(port);
                    break;
                }
            }
            lines.for_each(drop);
        });
        let mut guard = Self {
            child,
            url: String::new(),
        };
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromedriver reports its port");
        guard.url = format!("http://127.0.0.1:{port}");
        guard
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a browser test runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Light theme, JavaScript on: the screenshots in docs/ come from here.
    Default,
    /// JavaScript switched off in Chrome's preferences.
    NoJs,
    /// The dark colour scheme (`prefers-color-scheme: dark`), audited too.
    Dark,
}

/// A browser on a page of the app under test, with the checks every page gets.
pub struct Ui {
    pub driver: WebDriver,
    pub base: String,
    pub mode: Mode,
    test: String,
    step: AtomicUsize,
    axe: Arc<String>,
    shots: PathBuf,
    docs: Option<PathBuf>,
}

/// Run `body` in a fresh Chromium (own profile, 1200 px wide window) against
/// the server at `base`. Skips (or fails in CI) when no browser is installed.
/// The WebDriver session is quit and chromedriver killed however `body` ends.
pub async fn with_browser<F, Fut>(test: &str, base: &str, mode: Mode, body: F)
where
    F: FnOnce(Arc<Ui>) -> Fut,
    Fut: Future<Output = WebDriverResult<()>> + Send + 'static,
{
    let Some(tools) = tools_or_skip(test) else {
        return;
    };
    let _one_at_a_time = ONE_BROWSER.lock().await;
    let axe = Arc::new(tokio::task::spawn_blocking(axe_source).await.expect("axe-core"));
    let chromedriver = ChromeDriver::start(&tools.chromedriver);
    let profile = tempfile::tempdir().expect("profile dir");

    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(tools.chromium.to_str().expect("UTF-8 path")).unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1200,1100",
        "--lang=en-US",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))
        .unwrap();
    if mode == Mode::Dark {
        caps.add_arg("--force-dark-mode").unwrap();
    }
    if mode == Mode::NoJs {
        caps.add_experimental_option(
            "prefs",
            serde_json::json!({ "profile.managed_default_content_settings.javascript": 2 }),
        )
        .unwrap();
    }
    let driver = WebDriver::new(&chromedriver.url, caps)
        .await
        .expect("chromedriver starts a Chromium session");
    // Element queries look every 50 ms and give up after 60 s: a guard
    // against a hang, not a measure (a busy machine is slow, not wrong).
    driver.set_poller(Arc::new(ElementPollerWithTimeout::new(
        Duration::from_secs(60),
        Duration::from_millis(50),
    )));

    let suffix = match mode {
        Mode::Default => "",
        Mode::NoJs => "-nojs",
        Mode::Dark => "-dark",
    };
    let shots = manifest_dir().join(format!("target/screenshots/{test}{suffix}"));
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    // The README's pictures come from these tests in the default look.
    let docs = match mode {
        Mode::Default if matches!(test, "journey" | "webauthn" | "polish") => {
            std::env::var_os("LATCHKEY_DOCS_SCREENSHOTS").map(PathBuf::from)
        }
        _ => None,
    };
    let shots_dir = shots.clone();
    let ui = Arc::new(Ui {
        driver: driver.clone(),
        base: base.to_string(),
        mode,
        test: format!("{test}{suffix}"),
        step: AtomicUsize::new(0),
        axe,
        shots,
        docs,
    });
    // run_and_quit quits the session after success, error or panic. The
    // body runs as a task of its own so that a failure (an error or a
    // failed assertion) still gets a last screenshot of where it happened.
    let outcome = driver
        .run_and_quit(|_| async move {
            let result = tokio::spawn(body(ui.clone())).await;
            if !matches!(result, Ok(Ok(()))) {
                let _ = ui.screenshot("FAILED").await;
            }
            match result {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        })
        .await;
    drop(chromedriver);
    if let Err(e) = outcome {
        panic!(
            "browser test {test} ({mode:?}) failed: {e:?}\nscreenshots: {}",
            shots_dir.display()
        );
    }
}

/// One axe-core finding, as axe reports it.
#[derive(serde::Deserialize, Debug)]
struct Violation {
    id: String,
    impact: Option<String>,
    help: String,
    #[serde(rename = "helpUrl")]
    help_url: String,
    nodes: Vec<ViolationNode>,
}

#[derive(serde::Deserialize, Debug)]
struct ViolationNode {
    target: serde_json::Value,
    html: String,
    #[serde(rename = "failureSummary")]
    failure_summary: Option<String>,
}

impl Ui {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn goto(&self, path: &str) -> WebDriverResult<()> {
        self.driver.goto(self.url(path)).await
    }

    /// The element with this id, waiting for it to appear.
    pub async fn el(&self, id: &str) -> WebDriverResult<WebElement> {
        self.driver.query(By::Id(id)).desc(id).first().await
    }

    /// Run `f` on the element with this id, finding it again if the page
    /// replaced it in between (a stale element: the page was still being
    /// swapped for the next one, which a loaded machine makes likelier).
    async fn on_el<T, F, Fut>(&self, id: &str, f: F) -> WebDriverResult<T>
    where
        F: Fn(WebElement) -> Fut,
        Fut: std::future::Future<Output = WebDriverResult<T>>,
    {
        let mut tries = 0;
        loop {
            match f(self.el(id).await?).await {
                Err(e)
                    if tries < 5
                        && matches!(
                            e.as_inner(),
                            thirtyfour::error::WebDriverErrorInner::StaleElementReference(_)
                        ) =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    pub async fn click(&self, id: &str) -> WebDriverResult<()> {
        self.on_el(id, |e| async move { e.click().await }).await
    }

    /// Clear the field and type `text` into it.
    pub async fn type_into(&self, id: &str, text: &str) -> WebDriverResult<()> {
        self.on_el(id, |field| async move {
            field.clear().await?;
            field.send_keys(text).await
        })
        .await
    }

    pub async fn text(&self, id: &str) -> WebDriverResult<String> {
        self.on_el(id, |e| async move { Ok(e.text().await?.trim().to_string()) })
            .await
    }

    pub async fn exists(&self, id: &str) -> WebDriverResult<bool> {
        self.driver.query(By::Id(id)).nowait().exists().await
    }

    /// The path of the current page.
    pub async fn path(&self) -> WebDriverResult<String> {
        Ok(self.driver.current_url().await?.path().to_string())
    }

    /// The checks every page of a journey gets: a screenshot, then axe-core
    /// (no serious or critical violations) and a label for every field.
    pub async fn check_page(&self, step: &str) -> WebDriverResult<()> {
        self.screenshot(step).await?;
        self.audit(step).await
    }

    pub async fn screenshot(&self, step: &str) -> WebDriverResult<()> {
        let n = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let png = self.driver.screenshot_as_png().await?;
        let file = self.shots.join(format!("{n:02}-{step}.png"));
        std::fs::write(&file, &png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        let doc_name = DOC_SHOTS.iter().find(|(s, _)| *s == step).map(|(_, name)| name);
        if let (Some(docs), Some(name)) = (&self.docs, doc_name) {
            std::fs::create_dir_all(docs).expect("docs screenshot dir");
            std::fs::write(docs.join(format!("{name}.png")), &png).expect("write docs screenshot");
        }
        Ok(())
    }

    /// Inject axe-core into the page; everything it finds.
    async fn axe_violations(&self) -> WebDriverResult<Vec<Violation>> {
        // With JavaScript switched off the page gets no timers, and axe
        // needs setTimeout: run its callbacks as microtasks instead (there
        // are no page scripts to disturb).
        let timers = match self.mode {
            Mode::Default | Mode::Dark => "",
            Mode::NoJs => {
                "window.setTimeout = function (f) { var a = [].slice.call(arguments, 2); \
                 Promise.resolve().then(function () { f.apply(null, a); }); return 0; };\n\
                 window.clearTimeout = function () {};\n"
            }
        };
        let script = format!(
            "{timers}{}\n;var done = arguments[arguments.length - 1];\n\
             axe.run(document, {{ resultTypes: ['violations'] }})\n\
               .then(function (r) {{ done(JSON.stringify(r.violations)); }},\n\
                     function (e) {{ done(JSON.stringify({{ error: String(e) }})); }});",
            self.axe
        );
        let ret = self.driver.execute_async(script, Vec::new()).await?;
        let json: String = ret.convert()?;
        Ok(serde_json::from_str(&json).unwrap_or_else(|_| panic!("axe-core did not run: {json}")))
    }

    /// Inject axe-core into the page and fail on serious or critical findings.
    pub async fn audit(&self, step: &str) -> WebDriverResult<()> {
        let page = self.path().await?;
        let (serious, minor): (Vec<Violation>, Vec<Violation>) = self
            .axe_violations()
            .await?
            .into_iter()
            .partition(|v| matches!(v.impact.as_deref(), Some("serious" | "critical")));
        for v in &minor {
            // Shown with --nocapture; not a failure.
            println!(
                "axe note on {page}: [{}] {} — {}",
                v.impact.as_deref().unwrap_or("?"),
                v.id,
                v.help
            );
        }
        if !serious.is_empty() {
            let mut report = format!(
                "axe-core found {} serious/critical accessibility problem(s) on {page} (step {step} of {}):\n",
                serious.len(),
                self.test
            );
            for v in &serious {
                report += &format!(
                    "\n  [{}] {} — {}\n    {}\n",
                    v.impact.as_deref().unwrap_or("?"),
                    v.id,
                    v.help,
                    v.help_url
                );
                for node in &v.nodes {
                    report += &format!("    at {}: {}\n", node.target, node.html);
                    if let Some(summary) = &node.failure_summary {
                        for line in summary.lines() {
                            report += &format!("       {line}\n");
                        }
                    }
                }
            }
            panic!("{report}");
        }
        // Every form field has a label (axe checks this too; this says it
        // in our own words).
        let unlabelled = self.unlabelled_fields().await?;
        assert!(
            unlabelled.is_empty(),
            "fields without a label on {page}: {unlabelled:?}"
        );
        Ok(())
    }

    /// The markup of every non-hidden form field that has no label.
    async fn unlabelled_fields(&self) -> WebDriverResult<Vec<String>> {
        self.driver
            .execute(
                "return Array.from(document.querySelectorAll('input, select, textarea'))\
                   .filter(function (f) { return f.type !== 'hidden' && f.labels.length === 0 \
                     && !f.getAttribute('aria-label') && !f.getAttribute('aria-labelledby'); })\
                   .map(function (f) { return f.outerHTML; });",
                Vec::new(),
            )
            .await?
            .convert()
    }
}

/// The audit itself can fail: a page with real problems is caught.
#[tokio::test]
async fn browser_the_audit_catches_real_problems() {
    with_browser("audit-self-test", "about:blank", Mode::Default, |ui| async move {
        ui.driver
            .goto(
                "data:text/html,<!doctype html><html lang=en><title>Bad</title><main><h1>Bad</h1>\
                 <p class=faint>Faint text</p><input name=nameless>\
                 <style>.faint { color: %23cccccc; background: %23ffffff; }</style></main></html>",
            )
            .await?;
        let ids: Vec<String> = ui.axe_violations().await?.into_iter().map(|v| v.id).collect();
        assert!(ids.contains(&"color-contrast".to_string()), "{ids:?}");
        assert!(ids.contains(&"label".to_string()), "{ids:?}");
        assert_eq!(
            ui.unlabelled_fields().await?,
            vec!["<input name=\"nameless\">".to_string()]
        );
        Ok(())
    })
    .await;
}
