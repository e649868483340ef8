//! A small W3C WebDriver client for the browser tests: Debian's `chromedriver` driving
//! Debian's `chromium` headless, over the protocol's HTTP + JSON (no browser is downloaded).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key W3C WebDriver names element references with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const ENTER: &str = "\u{E007}";

/// A running `chromedriver`, stopped on drop.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

fn find_binary(name: &str, env: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    for dir in ["/usr/bin", "/usr/lib/chromium"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: scripts/test.sh installs Debian's chromium and chromium-driver \
         (or set {env})"
    );
}

impl Driver {
    pub async fn start() -> Driver {
        let driver = find_binary("chromedriver", "VOC_CHROMEDRIVER");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let ready = d
                .http
                .get(format!("{}/status", d.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return d;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not answer /status"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser window of `width` × `height` with a profile of its own (its own cookies).
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let chromium = find_binary("chromium", "VOC_CHROMIUM");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions",
                         format!("--window-size={width},{height}"),
                         format!("--user-data-dir={}", profile.path().display())]}}}});
        let r: Value = self
            .http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Browser {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.base),
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if method == reqwest::Method::POST {
            req = req.json(&body);
        }
        let r: Value = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .json()
            .await
            .unwrap();
        match r["value"]["error"].as_str() {
            Some(error) => Err(format!(
                "{method} {path} failed: {error}: {}",
                r["value"]["message"].as_str().unwrap_or("")
            )),
            None => Ok(r["value"].clone()),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads `what` of the first element matching `css`, finding it again when the page
    /// was replaced between finding and reading (a navigation after a key press).
    async fn read(&self, css: &str, what: &str) -> Option<Value> {
        for _ in 0..20 {
            let e = self.elements(css).await.into_iter().next()?;
            match self
                .try_call(
                    reqwest::Method::GET,
                    &format!("/element/{e}/{what}"),
                    Value::Null,
                )
                .await
            {
                Ok(v) => return Some(v),
                Err(msg) if msg.contains("stale element") => continue,
                Err(msg) => panic!("{msg}"),
            }
        }
        panic!("`{css}` kept going stale")
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn elements(&self, css: &str) -> Vec<String> {
        self.call(
            reqwest::Method::POST,
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
        .collect()
    }

    pub async fn count(&self, css: &str) -> usize {
        self.elements(css).await.len()
    }

    async fn element(&self, css: &str) -> String {
        self.elements(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches `{css}` on {}", self.base))
    }

    pub async fn text(&self, css: &str) -> String {
        let v = self
            .read(css, "text")
            .await
            .unwrap_or_else(|| panic!("no element matches `{css}` on {}", self.base));
        v.as_str().unwrap_or_default().to_string()
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.read(css, &format!("attribute/{name}"))
            .await?
            .as_str()
            .map(str::to_string)
    }

    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        )
        .await;
    }

    /// Types `text` into the element (focusing it, as a user clicking into it would).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Presses `keys` one after the other on whatever has focus, as a keyboard does.
    pub async fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.call(
            reqwest::Method::POST,
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
        self.call(reqwest::Method::DELETE, "/actions", Value::Null)
            .await;
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// Saves a PNG of the viewport at `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Checks `condition` on the page every 25 ms until it holds; panics naming `what`
    /// after 20 s (a page load after a key press is not instant).
    pub async fn wait_for<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !condition().await {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", Value::Null).await;
    }
}
