//! The console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) with fantoccini, one fresh profile per browser session,
//! and screenshots kept as test artefacts. Never touches the machine's
//! browser profile, certificate store or network beyond loopback.
//!
//! TLS: Chromium is not given the test CA (that needs NSS's certutil or a
//! machine-wide policy). Instead it accepts certificate errors for the
//! gateway's serving key alone, by its SubjectPublicKeyInfo hash
//! (`--ignore-certificate-errors-spki-list`, honoured only with a
//! `--user-data-dir`); a certificate with any other key is still refused.
//! Not `--ignore-certificate-errors`. The console's TLS itself is checked
//! by curl against the test CA (tests/e2e/serve.rs).

use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use sha2::{Digest, Sha256};

use crate::clients::registry::free_port;
use crate::clients::{Gateway, Scratch, TestCa, require};

/// The window, fixed so that screenshots are comparable from run to run.
const WINDOW: (u32, u32) = (1280, 900);

/// How long a page, an element or a navigation may take to appear.
const PATIENCE: Duration = Duration::from_secs(15);

/// Screenshots the README shows: with `IMAGEGATE_UPDATE_SCREENSHOTS=1` they
/// are also copied to `docs/screenshots/NAME.png`.
const README_SCREENSHOTS: [&str; 2] = ["image-access", "insights"];

/// A chromedriver on a free loopback port, in a process group of its own so
/// that dropping it also ends every Chromium it started, even after a panic.
pub struct Chromedriver {
    child: Child,
    port: u16,
    scratch: Scratch,
}

impl Chromedriver {
    /// Starts chromedriver and waits until it is ready for sessions. Panics,
    /// saying what to install, when Chromium or chromedriver is missing.
    pub fn start() -> Chromedriver {
        require("chromium");
        require("chromedriver");
        let scratch = Scratch::new("chromedriver");
        let home = scratch.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let log = scratch.path().join("chromedriver.log");
        // A port picked by the kernel can be taken again before chromedriver
        // binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new("chromedriver");
            // Chromium's caches and settings land in this directory, not in
            // the caller's HOME.
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("LANG", "C.UTF-8")
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", home.join(".config"))
                .env("XDG_CACHE_HOME", home.join(".cache"))
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let mut child = cmd.spawn().expect("chromedriver starts");
            let started = Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("chromedriver exited with {status}:\n{log}");
                }
                if ready(port) {
                    return Chromedriver {
                        child,
                        port,
                        scratch,
                    };
                }
                if started.elapsed() > PATIENCE {
                    let _ = child.kill();
                    panic!(
                        "chromedriver is not ready on port {port} after {PATIENCE:?}:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("chromedriver found no free port in 5 tries");
    }

    /// Everything chromedriver logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browsers it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// Whether chromedriver answers `GET /status` on `port` as ready for
/// sessions (not just anything listening there).
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"ready\":true")
}

/// One person's browser: a Chromium session with a profile of its own, on
/// the console of one gateway. Dereferences to the fantoccini [`Client`]
/// for everything the helpers here do not cover.
pub struct Browser {
    client: Client,
    base: String,
    _profile: Scratch,
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// A fresh headless Chromium on `gateway`'s console, served with `ca`'s
    /// certificate.
    pub async fn start(driver: &Chromedriver, gateway: &Gateway, ca: &TestCa) -> Browser {
        let profile = Scratch::new("chromium-profile");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            "--lang=en-GB".to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={}", spki_pin(ca)),
        ];
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": executable("chromium").expect("chromium is installed"),
                "args": args,
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        // chromedriver speaks plain HTTP on loopback: no TLS here.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no browser session from chromedriver: {e}\n{}",
                    driver.log()
                )
            });
        fit_viewport(&client).await;
        Browser {
            client,
            base: format!("https://{}", gateway.host_port()),
            _profile: profile,
        }
    }

    /// Goes to `path` on the console (`/console/tokens`) and waits for it
    /// to load; fails if what loaded is not a console page.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        let title = self.client.title().await.unwrap();
        assert!(
            title.ends_with(" · imagegate"),
            "{path} shows {title:?}, not a console page (Chromium titles a refused certificate \"Privacy error\")"
        );
    }

    /// The path (and query) of the page shown.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Signs in at `/console/sign-in` with the form, as a person does.
    pub async fn sign_in(&self, user: &str, password: &str) {
        self.open("/console/sign-in").await;
        self.field("Username").await.send_keys(user).await.unwrap();
        self.field("Password")
            .await
            .send_keys(password)
            .await
            .unwrap();
        self.click_to_load(&self.button("Sign in").await).await;
        let header = self.text("header").await;
        assert!(
            header.contains(&format!("Signed in as {user}")),
            "{user} is not signed in; the page at {} says:\n{}",
            self.path().await,
            self.text("body").await
        );
    }

    /// The control labelled `label` (by its `<label for>`).
    pub async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let label_element = self.find_by_text("label", label).await;
        let id = label_element
            .attr("for")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("label {label:?} names no control (no `for`)"));
        self.client
            .find(Locator::Id(&id))
            .await
            .unwrap_or_else(|e| panic!("label {label:?} names #{id}, which is not there: {e}"))
    }

    /// The label whose text is `label`, to click as a person does.
    pub async fn label(&self, label: &str) -> fantoccini::elements::Element {
        self.find_by_text("label", label).await
    }

    /// The button whose text is `text` (the first, if several).
    pub async fn button(&self, text: &str) -> fantoccini::elements::Element {
        self.find_by_text("button", text).await
    }

    /// The link whose text is `text`.
    pub async fn link(&self, text: &str) -> fantoccini::elements::Element {
        self.find_by_text("a", text).await
    }

    async fn find_by_text(&self, tag: &str, text: &str) -> fantoccini::elements::Element {
        let xpath = format!("//{tag}[normalize-space()={}]", xpath_literal(text));
        let found = self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => panic!("no <{tag}> {text:?} on {} ({e})", self.path().await),
        }
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Clicks `element` (a submit button, a link) and waits until the next
    /// page has loaded in its place.
    pub async fn click_to_load(&self, element: &fantoccini::elements::Element) {
        // A mark on the current page's window: gone once another page is there.
        self.client
            .execute("window.imagegateOldPage = true;", vec![])
            .await
            .unwrap();
        element.click().await.unwrap();
        let started = Instant::now();
        loop {
            let loaded = self
                .client
                .execute(
                    "return window.imagegateOldPage === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            // Mid-navigation, a script may fail: ask again.
            if let Ok(serde_json::Value::Bool(true)) = loaded {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no new page {PATIENCE:?} after the click; still on {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Saves a PNG of the window as `NAME.png` among the test artefacts
    /// (`TARGET/e2e-artifacts/screenshots/`), and, for the README's
    /// screenshots when `IMAGEGATE_UPDATE_SCREENSHOTS=1`, in `docs/screenshots/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = target_dir().join("e2e-artifacts/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        if README_SCREENSHOTS.contains(&name)
            && std::env::var_os("IMAGEGATE_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1")
        {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
        eprintln!("screenshot {name}: {}", path.display());
        path
    }

    /// Ends the session and its Chromium.
    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// Sizes the window so that the page's viewport, which screenshots show,
/// is exactly [`WINDOW`]: headless Chromium keeps room for browser controls
/// it does not draw, so `--window-size` alone leaves a shorter viewport.
async fn fit_viewport(client: &Client) {
    let viewport = || async {
        let size = client
            .execute(
                "return [window.innerWidth, window.innerHeight, window.outerWidth, window.outerHeight];",
                vec![],
            )
            .await
            .unwrap();
        let n = |i: usize| size[i].as_u64().unwrap() as u32;
        (n(0), n(1), n(2), n(3))
    };
    let (inner_w, inner_h, outer_w, outer_h) = viewport().await;
    client
        .set_window_size(WINDOW.0 + outer_w - inner_w, WINDOW.1 + outer_h - inner_h)
        .await
        .unwrap();
    let (w, h, _, _) = viewport().await;
    assert_eq!((w, h), WINDOW, "the browser's viewport");
}

/// Chromium's pin for `ca`'s serving key: base64 of the SHA-256 of its
/// SubjectPublicKeyInfo.
fn spki_pin(ca: &TestCa) -> String {
    use rcgen::PublicKeyData as _;
    let pem = std::fs::read_to_string(ca.key()).unwrap();
    let key = rcgen::KeyPair::from_pem(&pem).expect("the test CA's serving key parses");
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(key.subject_public_key_info()))
}

/// The full path of `tool` on PATH, if it is there.
fn executable(tool: &str) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// The build's target directory: `CARGO_TARGET_DIR` when set, else the
/// workspace's `target/`.
pub fn target_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => manifest.join(dir),
        None => manifest.join("target"),
    }
}

/// `text` as an XPath string literal (XPath 1.0 has no escapes).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}
