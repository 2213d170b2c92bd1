//! One registry connection: endpoint, authentication (basic, bearer tokens per scope), and
//! requests with retries and backoff.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ureq::http;

use super::RegistryOptions;
use super::auth::{Challenge, TokenResponse, parse_challenges, url_encode};
use super::credentials::Credential;
use super::endpoint::Endpoint;
use super::error::{RegistryError, Result, short_detail};

/// A token scope: `repository:NAME:ACTIONS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The repository path (`library/busybox`).
    pub repository: String,
    /// `pull` or `pull,push`.
    pub actions: &'static str,
}

impl Scope {
    /// Read access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            actions: "pull",
        }
    }

    /// Read and write access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope {
            repository: repository.to_string(),
            actions: "pull,push",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "repository:{}:{}", self.repository, self.actions)
    }
}

/// A request body that can be sent again (after a retry or an auth challenge).
#[derive(Debug, Clone)]
pub(crate) enum ReqBody {
    /// No body.
    Empty,
    /// In-memory bytes.
    Bytes(Vec<u8>),
    /// `len` bytes of a file from `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

/// One request to the registry.
#[derive(Debug, Clone)]
pub(crate) struct Req<'a> {
    pub method: &'static str,
    /// A path (`/v2/...`) or an absolute URL (an upload location).
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReqBody,
    pub scopes: &'a [Scope],
}

impl<'a> Req<'a> {
    pub(crate) fn new(method: &'static str, url: impl Into<String>, scopes: &'a [Scope]) -> Self {
        Req {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: ReqBody::Empty,
            scopes,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: ReqBody) -> Self {
        self.body = body;
        self
    }
}

/// What the client knows about how the registry authenticates.
#[derive(Debug, Clone)]
enum AuthKind {
    Unknown,
    Basic,
    Bearer { realm: String, service: String },
}

#[derive(Debug)]
struct AuthState {
    kind: AuthKind,
    tokens: HashMap<String, (String, Instant)>,
}

/// A client for one registry. `Send + Sync`: one client serves parallel blob transfers.
pub struct Client {
    endpoint: Endpoint,
    agent: ureq::Agent,
    base: OnceLock<String>,
    opts: RegistryOptions,
    credential: OnceLock<Option<Credential>>,
    state: Mutex<AuthState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status) && status != 501
}

fn retryable_error(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
    )
}

/// Reads a response header as a string.
pub(crate) fn header<'r>(resp: &'r http::Response<ureq::Body>, name: &str) -> Option<&'r str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Client {
    /// A client for `registry` (as named in references: `docker.io`, `127.0.0.1:5000`).
    pub fn new(registry: &str, opts: &RegistryOptions) -> Result<Client> {
        let endpoint = Endpoint::new(registry, &opts.insecure_registries);
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(endpoint.insecure)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("pelagos-image-store/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.io_timeout))
            .timeout_per_write(Some(opts.io_timeout))
            .max_redirects(5)
            .build()
            .into();
        Ok(Client {
            endpoint,
            agent,
            base: OnceLock::new(),
            opts: opts.clone(),
            credential: OnceLock::new(),
            state: Mutex::new(AuthState {
                kind: AuthKind::Unknown,
                tokens: HashMap::new(),
            }),
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    fn credential(&self) -> Result<Option<&Credential>> {
        if let Some(c) = self.credential.get() {
            return Ok(c.as_ref());
        }
        let c = self.opts.credentials.lookup(&self.endpoint.registry)?;
        Ok(self.credential.get_or_init(|| c).as_ref())
    }

    /// `https://host`, or for an insecure registry whatever answers: https (unverified) first,
    /// then plain http, as Docker does.
    pub fn base_url(&self) -> &str {
        self.base.get_or_init(|| {
            let https = format!("https://{}", self.endpoint.host);
            if !self.endpoint.insecure {
                return https;
            }
            let probe = self
                .agent
                .get(format!("{https}/v2/"))
                .config()
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .call();
            match probe {
                Ok(_) => https,
                Err(_) => format!("http://{}", self.endpoint.host),
            }
        })
    }

    /// An absolute URL for a path or a (possibly relative) Location header.
    pub(crate) fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else if url.starts_with('/') {
            format!("{}{url}", self.base_url())
        } else {
            format!("{}/{url}", self.base_url())
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<&str>) -> Duration {
        let cap = Duration::from_secs(10);
        if let Some(s) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
            return Duration::from_secs(s).min(cap);
        }
        self.opts
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(cap)
    }

    fn dispatch(
        &self,
        method: &str,
        url: &str,
        headers: &[(&'static str, String)],
        auth: Option<&str>,
        body: &ReqBody,
    ) -> std::result::Result<http::Response<ureq::Body>, ureq::Error> {
        let mut b = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let with_body = matches!(method, "POST" | "PUT" | "PATCH");
        let send = match body {
            ReqBody::Empty => {
                if with_body {
                    b = b.header("content-length", "0");
                }
                ureq::SendBody::none()
            }
            ReqBody::Bytes(v) => {
                b = b.header("content-length", v.len().to_string());
                ureq::SendBody::from_owned_reader(std::io::Cursor::new(v.clone()))
            }
            ReqBody::File { path, offset, len } => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(*offset))?;
                b = b.header("content-length", len.to_string());
                ureq::SendBody::from_owned_reader(f.take(*len))
            }
        };
        let req = b.body(send)?;
        self.agent.run(req)
    }

    /// Sends without authentication handling, retrying transport errors, 429 and 5xx.
    fn call_raw(
        &self,
        method: &str,
        url: &str,
        headers: &[(&'static str, String)],
        auth: Option<&str>,
        body: &ReqBody,
    ) -> Result<http::Response<ureq::Body>> {
        let mut attempt = 0u32;
        loop {
            match self.dispatch(method, url, headers, auth, body) {
                Err(e) => {
                    if attempt < self.opts.retries && retryable_error(&e) {
                        std::thread::sleep(self.backoff(attempt, None));
                        attempt += 1;
                        continue;
                    }
                    let mut message = e.to_string();
                    if message.contains("certificate") {
                        // a self-signed or private-CA registry: say how to reach it anyway
                        message.push_str(
                            " (a registry with a self-signed certificate needs \
                             --insecure-registry HOST:PORT)",
                        );
                    }
                    return Err(RegistryError::Transport {
                        method: method.to_string(),
                        url: url.to_string(),
                        message,
                    });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if retryable_status(status) && attempt < self.opts.retries {
                        let wait = self.backoff(attempt, header(&resp, "retry-after"));
                        drop(resp);
                        std::thread::sleep(wait);
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }

    fn scope_key(scopes: &[Scope]) -> String {
        let mut v: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        v.sort();
        v.dedup();
        v.join(" ")
    }

    /// The Authorization header to send proactively for `scopes`, fetching a token when the
    /// registry is known to use bearer tokens.
    fn auth_header(&self, scopes: &[Scope]) -> Result<Option<String>> {
        let kind = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .kind
            .clone();
        match kind {
            AuthKind::Unknown => Ok(None),
            AuthKind::Basic => Ok(self.credential()?.map(Credential::basic_header)),
            AuthKind::Bearer { realm, service } => {
                let key = Self::scope_key(scopes);
                {
                    let st = self
                        .state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some((tok, exp)) = st.tokens.get(&key)
                        && *exp > Instant::now()
                    {
                        return Ok(Some(format!("Bearer {tok}")));
                    }
                }
                let tok = self.fetch_token(&realm, &service, scopes, None)?;
                Ok(Some(format!("Bearer {tok}")))
            }
        }
    }

    /// Runs the token flow: GET `realm?service=..&scope=..` (with basic credentials when we have
    /// some), or the OAuth2 refresh-token POST for identity tokens.
    fn fetch_token(
        &self,
        realm: &str,
        service: &str,
        scopes: &[Scope],
        extra_scope: Option<&str>,
    ) -> Result<String> {
        let mut scope_strs: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        if let Some(s) = extra_scope
            && !scope_strs.iter().any(|x| x == s)
        {
            scope_strs.push(s.to_string());
        }
        let cred = self.credential()?.cloned();
        let registry = self.endpoint.registry.clone();
        let resp = match &cred {
            Some(c) if c.is_identity_token() => {
                let mut form = format!(
                    "grant_type=refresh_token&client_id=pelagos&service={}&refresh_token={}",
                    url_encode(service),
                    url_encode(&c.secret)
                );
                if !scope_strs.is_empty() {
                    form.push_str("&scope=");
                    form.push_str(&url_encode(&scope_strs.join(" ")));
                }
                self.call_raw(
                    "POST",
                    realm,
                    &[(
                        "content-type",
                        "application/x-www-form-urlencoded".to_string(),
                    )],
                    None,
                    &ReqBody::Bytes(form.into_bytes()),
                )?
            }
            _ => {
                let mut url = realm.to_string();
                let mut sep = if url.contains('?') { '&' } else { '?' };
                if !service.is_empty() {
                    let _ = write!(url, "{sep}service={}", url_encode(service));
                    sep = '&';
                }
                for s in &scope_strs {
                    let _ = write!(url, "{sep}scope={}", url_encode(s));
                    sep = '&';
                }
                let basic = cred.as_ref().map(Credential::basic_header);
                self.call_raw("GET", &url, &[], basic.as_deref(), &ReqBody::Empty)?
            }
        };
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let text = body
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        if status == 401 || status == 403 {
            return Err(RegistryError::Auth {
                registry,
                reason: if cred.is_some() {
                    "the token server refused the credentials".into()
                } else {
                    "the token server requires credentials (log in first)".into()
                },
            });
        }
        if status != 200 {
            return Err(RegistryError::Auth {
                registry,
                reason: format!(
                    "token server {realm} answered HTTP {status}: {}",
                    short_detail(&text)
                ),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_str(&text).map_err(|e| RegistryError::Auth {
                registry: registry.clone(),
                reason: format!("token server {realm}: invalid answer: {e}"),
            })?;
        let (tok, ttl) = parsed.into_token().ok_or_else(|| RegistryError::Auth {
            registry,
            reason: format!("token server {realm}: no token in the answer"),
        })?;
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // renew a little before expiry
        let exp = Instant::now() + Duration::from_secs(ttl.saturating_sub(5).max(1));
        st.tokens
            .insert(Self::scope_key(scopes), (tok.clone(), exp));
        Ok(tok)
    }

    /// Reacts to a 401: learns the scheme, gets a token or picks the basic credentials.
    /// Returns whether the request should be sent again.
    fn on_unauthorized(
        &self,
        challenges: &[Challenge],
        scopes: &[Scope],
        sent_auth: bool,
    ) -> Result<bool> {
        let registry = self.endpoint.registry.clone();
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = c.param("realm").unwrap_or_default().to_string();
            if realm.is_empty() {
                return Err(RegistryError::Auth {
                    registry,
                    reason: "bearer challenge without a realm".into(),
                });
            }
            let service = c.param("service").unwrap_or_default().to_string();
            {
                let mut st = self
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                st.kind = AuthKind::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                };
                st.tokens.remove(&Self::scope_key(scopes));
            }
            self.fetch_token(&realm, &service, scopes, c.param("scope"))?;
            return Ok(true);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let Some(cred) = self.credential()? else {
                return Err(RegistryError::Auth {
                    registry,
                    reason: "the registry requires credentials (log in first)".into(),
                });
            };
            let was_basic = matches!(
                self.state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .kind,
                AuthKind::Basic
            );
            if was_basic && sent_auth {
                return Err(RegistryError::Auth {
                    registry,
                    reason: format!("the registry refused the credentials of {}", cred.username),
                });
            }
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .kind = AuthKind::Basic;
            return Ok(true);
        }
        Err(RegistryError::Auth {
            registry,
            reason: "unauthorized, and no supported authentication scheme offered".into(),
        })
    }

    /// Sends a request with authentication, retries and backoff. Returns any final status except
    /// 401 (an [`RegistryError::Auth`]); the caller checks it.
    pub(crate) fn send(&self, req: &Req<'_>) -> Result<http::Response<ureq::Body>> {
        let url = self.absolute(&req.url);
        let mut auth_rounds = 0;
        loop {
            let auth = self.auth_header(req.scopes)?;
            let resp = self.call_raw(req.method, &url, &req.headers, auth.as_deref(), &req.body)?;
            if resp.status().as_u16() != 401 {
                return Ok(resp);
            }
            let challenges: Vec<Challenge> = resp
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(parse_challenges)
                .collect();
            drop(resp);
            if auth_rounds >= 2 {
                return Err(RegistryError::Auth {
                    registry: self.endpoint.registry.clone(),
                    reason: format!("{} {url} is still unauthorized", req.method),
                });
            }
            auth_rounds += 1;
            if !self.on_unauthorized(&challenges, req.scopes, auth.is_some())? {
                return Err(RegistryError::Auth {
                    registry: self.endpoint.registry.clone(),
                    reason: format!("{} {url} is unauthorized", req.method),
                });
            }
        }
    }

    /// Turns a non-success response into an error naming the request.
    pub(crate) fn status_error(
        &self,
        req: &Req<'_>,
        resp: http::Response<ureq::Body>,
    ) -> RegistryError {
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        RegistryError::Status {
            method: req.method.to_string(),
            url: self.absolute(&req.url),
            status,
            detail: short_detail(&text),
        }
    }

    /// Checks that the registry accepts our credentials (`GET /v2/`, then a token if it uses the
    /// token flow).
    pub fn check_login(&self) -> Result<()> {
        let req = Req::new("GET", "/v2/", &[]);
        let resp = self.send(&req)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(self.status_error(&req, resp));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_strings() {
        assert_eq!(
            Scope::pull("library/busybox").to_string(),
            "repository:library/busybox:pull"
        );
        assert_eq!(Scope::push("a/b").to_string(), "repository:a/b:pull,push");
        assert_eq!(
            Client::scope_key(&[Scope::push("b"), Scope::pull("a"), Scope::push("b")]),
            "repository:a:pull repository:b:pull,push"
        );
    }

    #[test]
    fn retry_classification() {
        for s in [429, 500, 502, 503, 504, 408] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 201, 400, 401, 403, 404, 501] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_and_honours_retry_after() {
        let opts = RegistryOptions {
            backoff: Duration::from_millis(100),
            ..RegistryOptions::default()
        };
        let c = Client::new("127.0.0.1:1", &opts).unwrap();
        assert_eq!(c.backoff(0, None), Duration::from_millis(100));
        assert_eq!(c.backoff(3, None), Duration::from_millis(800));
        assert_eq!(c.backoff(30, None), Duration::from_secs(10));
        assert_eq!(c.backoff(0, Some("2")), Duration::from_secs(2));
        assert_eq!(c.backoff(0, Some("9999")), Duration::from_secs(10));
    }
}
