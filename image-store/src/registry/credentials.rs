//! Registry credentials: Docker's `config.json` (`auths`, `credsStore`, `credHelpers`) and the
//! `docker-credential-*` helper protocol; `login` and `logout`.
//!
//! Secrets are never printed: [`Credential`]'s `Debug` redacts them, and errors name only the
//! registry, the file or the helper.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};

use super::RegistryOptions;
use super::client::Client;
use super::error::{RegistryError, Result};
use crate::reference::DEFAULT_DOMAIN;

/// The key Docker uses for Docker Hub in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A user name and a secret (a password, a token, or an identity token when the user name is
/// `<token>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name (`<token>` for an identity token).
    pub username: String,
    /// The password or token.
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// A user name and password.
    pub fn new(username: &str, secret: &str) -> Credential {
        Credential {
            username: username.to_string(),
            secret: secret.to_string(),
        }
    }

    /// Whether the secret is an OAuth2 identity (refresh) token.
    pub fn is_identity_token(&self) -> bool {
        self.username == "<token>"
    }

    /// The value of a `Basic` Authorization header.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.secret))
        )
    }
}

/// Where credentials are looked up and stored.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    /// The directory holding `config.json` (`$DOCKER_CONFIG`, else `~/.docker`); `None`: no file.
    pub config_dir: Option<PathBuf>,
    /// Credentials given explicitly, per registry; they win over the file.
    pub explicit: Vec<(String, Credential)>,
    /// Run `docker-credential-*` helpers from this directory instead of `$PATH`.
    pub helper_dir: Option<PathBuf>,
}

/// Docker's `ConvertToHostname`: strips a scheme and a path from a `config.json` key.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn is_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// The `config.json` key (and helper server URL) for a registry.
fn auth_key(registry: &str) -> String {
    if is_hub(registry) {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    }
}

fn same_registry(key: &str, registry: &str) -> bool {
    let h = key_host(key);
    h == registry || (is_hub(h) && is_hub(registry))
}

impl CredentialStore {
    /// `$DOCKER_CONFIG`, else `$HOME/.docker`.
    pub fn from_env() -> CredentialStore {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|d| !d.is_empty())
                    .map(|h| PathBuf::from(h).join(".docker"))
            });
        CredentialStore {
            config_dir: dir,
            explicit: Vec::new(),
            helper_dir: None,
        }
    }

    /// No credentials at all (anonymous access only).
    pub fn anonymous() -> CredentialStore {
        CredentialStore::default()
    }

    /// The `config.json` path, if any.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config_dir.as_ref().map(|d| d.join("config.json"))
    }

    fn read_config(&self) -> Result<Option<(PathBuf, Map<String, Value>)>> {
        let Some(path) = self.config_path() else {
            return Ok(None);
        };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(RegistryError::Credentials {
                    source_name: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(Some((path, m))),
            Ok(_) => Err(RegistryError::Credentials {
                source_name: path.display().to_string(),
                reason: "not a JSON object".into(),
            }),
            Err(e) => Err(RegistryError::Credentials {
                source_name: path.display().to_string(),
                reason: format!("invalid JSON: {e}"),
            }),
        }
    }

    fn helper_for(config: &Map<String, Value>, registry: &str) -> Option<String> {
        if let Some(Value::Object(helpers)) = config.get("credHelpers") {
            for (k, v) in helpers {
                if same_registry(k, registry)
                    && let Some(h) = v.as_str().filter(|h| !h.is_empty())
                {
                    return Some(h.to_string());
                }
            }
        }
        config
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    fn helper_program(&self, name: &str) -> OsString {
        let prog = format!("docker-credential-{name}");
        match &self.helper_dir {
            Some(d) => d.join(prog).into_os_string(),
            None => prog.into(),
        }
    }

    /// Runs `docker-credential-NAME ACTION` with `input` on stdin; returns (success, stdout).
    fn run_helper(&self, name: &str, action: &str, input: &[u8]) -> Result<(bool, Vec<u8>)> {
        let prog = self.helper_program(name);
        let err = |reason: String| RegistryError::Credentials {
            source_name: format!("docker-credential-{name} {action}"),
            reason,
        };
        let mut child = Command::new(&prog)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("cannot run helper: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input)
                .map_err(|e| err(format!("cannot write to helper: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| err(format!("helper failed: {e}")))?;
        Ok((out.status.success(), out.stdout))
    }

    /// The credential for `registry` (`docker.io`, `host:port`), if any.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some((_, c)) = self
            .explicit
            .iter()
            .find(|(r, _)| same_registry(r, registry))
        {
            return Ok(Some(c.clone()));
        }
        let Some((path, config)) = self.read_config()? else {
            return Ok(None);
        };
        if let Some(helper) = Self::helper_for(&config, registry) {
            let (ok, stdout) = self.run_helper(&helper, "get", auth_key(registry).as_bytes())?;
            if ok {
                let v: Value =
                    serde_json::from_slice(&stdout).map_err(|e| RegistryError::Credentials {
                        source_name: format!("docker-credential-{helper} get"),
                        reason: format!("invalid answer: {e}"),
                    })?;
                let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
                let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
                if !secret.is_empty() {
                    return Ok(Some(Credential::new(user, secret)));
                }
            }
            // "credentials not found": fall back to the file's auths, like Docker
        }
        let Some(Value::Object(auths)) = config.get("auths") else {
            return Ok(None);
        };
        for (k, v) in auths {
            if !same_registry(k, registry) {
                continue;
            }
            if let Some(tok) = v.get("identitytoken").and_then(Value::as_str)
                && !tok.is_empty()
            {
                return Ok(Some(Credential::new("<token>", tok)));
            }
            if let Some(a) = v.get("auth").and_then(Value::as_str)
                && !a.is_empty()
            {
                let decoded = B64
                    .decode(a.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| RegistryError::Credentials {
                        source_name: path.display().to_string(),
                        reason: format!("auths.{k}.auth is not base64 of user:password"),
                    })?;
                let (u, p) = decoded
                    .split_once(':')
                    .ok_or_else(|| RegistryError::Credentials {
                        source_name: path.display().to_string(),
                        reason: format!("auths.{k}.auth is not base64 of user:password"),
                    })?;
                return Ok(Some(Credential::new(u, p)));
            }
            let u = v.get("username").and_then(Value::as_str).unwrap_or("");
            let p = v.get("password").and_then(Value::as_str).unwrap_or("");
            if !p.is_empty() {
                return Ok(Some(Credential::new(u, p)));
            }
        }
        Ok(None)
    }

    fn write_config(path: &Path, config: &Map<String, Value>) -> Result<()> {
        let err = |reason: String| RegistryError::Credentials {
            source_name: path.display().to_string(),
            reason,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(config.clone()))
            .map_err(|e| err(e.to_string()))?;
        bytes.push(b'\n');
        let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let res = (|| {
            let mut f = fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(err(e.to_string()));
        }
        Ok(())
    }

    /// Stores a credential: in the registry's helper when one is configured, else base64 in
    /// `config.json` `auths` (mode 0600).
    pub fn store(&self, registry: &str, cred: &Credential) -> Result<()> {
        let path = self
            .config_path()
            .ok_or_else(|| RegistryError::Credentials {
                source_name: "config.json".into(),
                reason: "no config directory (set DOCKER_CONFIG or HOME)".into(),
            })?;
        let mut config = self.read_config()?.map(|(_, c)| c).unwrap_or_default();
        let key = auth_key(registry);
        if let Some(helper) = Self::helper_for(&config, registry) {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": cred.username,
                "Secret": cred.secret,
            });
            let (ok, _) = self.run_helper(&helper, "store", input.to_string().as_bytes())?;
            if !ok {
                return Err(RegistryError::Credentials {
                    source_name: format!("docker-credential-{helper} store"),
                    reason: "the helper refused to store the credential".into(),
                });
            }
            // Docker records the registry in auths with an empty entry
            let auths = config
                .entry("auths")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(a) = auths {
                a.insert(key, Value::Object(Map::new()));
            }
            return Self::write_config(&path, &config);
        }
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(a) = auths else {
            return Err(RegistryError::Credentials {
                source_name: path.display().to_string(),
                reason: "auths is not an object".into(),
            });
        };
        a.retain(|k, _| !same_registry(k, registry));
        let mut entry = Map::new();
        entry.insert(
            "auth".into(),
            Value::String(B64.encode(format!("{}:{}", cred.username, cred.secret))),
        );
        a.insert(key, Value::Object(entry));
        Self::write_config(&path, &config)
    }

    /// Removes the credential of `registry`; returns whether there was one.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let Some((path, mut config)) = self.read_config()? else {
            return Ok(false);
        };
        let mut found = false;
        if let Some(helper) = Self::helper_for(&config, registry) {
            let (ok, _) = self.run_helper(&helper, "erase", auth_key(registry).as_bytes())?;
            found |= ok;
        }
        if let Some(Value::Object(a)) = config.get_mut("auths") {
            let before = a.len();
            a.retain(|k, _| !same_registry(k, registry));
            found |= a.len() != before;
        }
        Self::write_config(&path, &config)?;
        Ok(found)
    }
}

/// Logs in: checks `cred` against the registry (basic auth or the token flow), then stores it.
pub fn login(registry: &str, cred: &Credential, opts: &RegistryOptions) -> Result<()> {
    let registry = if registry.is_empty() {
        DEFAULT_DOMAIN
    } else {
        registry
    };
    let mut check_opts = opts.clone();
    check_opts.credentials = CredentialStore {
        config_dir: None,
        explicit: vec![(registry.to_string(), cred.clone())],
        helper_dir: None,
    };
    let client = Client::new(registry, &check_opts)?;
    client.check_login()?;
    opts.credentials.store(registry, cred)
}

/// Logs out: removes the stored credential; returns whether there was one.
pub fn logout(registry: &str, opts: &RegistryOptions) -> Result<bool> {
    let registry = if registry.is_empty() {
        DEFAULT_DOMAIN
    } else {
        registry
    };
    opts.credentials.erase(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_in(dir: &Path) -> CredentialStore {
        CredentialStore {
            config_dir: Some(dir.to_path_buf()),
            explicit: Vec::new(),
            helper_dir: Some(dir.to_path_buf()),
        }
    }

    #[test]
    fn auths_base64_and_hub_aliases() {
        let d = tempfile::tempdir().unwrap();
        let s = store_in(d.path());
        assert_eq!(s.lookup("docker.io").unwrap(), None);
        fs::write(
            d.path().join("config.json"),
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"http://reg.example:5000/v2/":{{"username":"u2","password":"p2"}},"tok.example":{{"identitytoken":"rt"}}}}}}"#,
                B64.encode("me:pw:with:colons")
            ),
        )
        .unwrap();
        assert_eq!(
            s.lookup("docker.io").unwrap(),
            Some(Credential::new("me", "pw:with:colons"))
        );
        assert_eq!(
            s.lookup("reg.example:5000").unwrap(),
            Some(Credential::new("u2", "p2"))
        );
        let t = s.lookup("tok.example").unwrap().unwrap();
        assert!(t.is_identity_token());
        assert_eq!(s.lookup("other.example").unwrap(), None);
        assert!(!format!("{t:?}").contains("rt\""));
    }

    #[test]
    fn store_and_erase_keep_other_fields_and_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("config.json"),
            r#"{"psFormat":"x","auths":{"a.example":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        let s = store_in(d.path());
        s.store("reg.example", &Credential::new("u", "secret"))
            .unwrap();
        let v: Value =
            serde_json::from_slice(&fs::read(d.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "x");
        assert_eq!(v["auths"]["reg.example"]["auth"], B64.encode("u:secret"));
        let mode = fs::metadata(d.path().join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            s.lookup("reg.example").unwrap(),
            Some(Credential::new("u", "secret"))
        );
        assert!(s.erase("reg.example").unwrap());
        assert!(!s.erase("reg.example").unwrap());
        assert_eq!(s.lookup("reg.example").unwrap(), None);
        assert_eq!(
            s.lookup("a.example").unwrap(),
            Some(Credential::new("x", "y"))
        );
    }

    #[test]
    fn credential_helpers_get_store_erase() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("db");
        fs::create_dir(&db).unwrap();
        // a helper keeping one JSON file per server URL (base64 of the URL as the name)
        let helper = format!(
            "#!/bin/sh\nset -e\ncase \"$1\" in\n\
             get) url=$(cat); f={db}/$(printf %s \"$url\" | base64 -w0 | tr / _); \
             [ -f \"$f\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}; cat \"$f\";;\n\
             store) in=$(cat); url=$(printf %s \"$in\" | sed 's/.*\"ServerURL\":\"\\([^\"]*\\)\".*/\\1/'); \
             printf %s \"$in\" > {db}/$(printf %s \"$url\" | base64 -w0 | tr / _);;\n\
             erase) url=$(cat); rm {db}/$(printf %s \"$url\" | base64 -w0 | tr / _);;\n\
             esac\n",
            db = db.display()
        );
        let hp = d.path().join("docker-credential-test");
        fs::write(&hp, helper).unwrap();
        fs::set_permissions(&hp, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            d.path().join("config.json"),
            r#"{"credHelpers":{"helped.example":"test"},"auths":{}}"#,
        )
        .unwrap();
        let s = store_in(d.path());
        assert_eq!(s.lookup("helped.example").unwrap(), None);
        s.store("helped.example", &Credential::new("hu", "s3cr3t-h"))
            .unwrap();
        // the secret went to the helper, not to the file
        let text = fs::read_to_string(d.path().join("config.json")).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(
            s.lookup("helped.example").unwrap(),
            Some(Credential::new("hu", "s3cr3t-h"))
        );
        assert!(s.erase("helped.example").unwrap());
        assert_eq!(s.lookup("helped.example").unwrap(), None);
        // credsStore applies to every registry without a credHelpers entry
        fs::write(d.path().join("config.json"), r#"{"credsStore":"test"}"#).unwrap();
        s.store("docker.io", &Credential::new("d", "ds")).unwrap();
        assert_eq!(
            s.lookup("index.docker.io").unwrap(),
            Some(Credential::new("d", "ds"))
        );
        assert!(
            fs::read_dir(&db).unwrap().count() == 1,
            "one entry in the helper's store"
        );
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("config.json"), r#"{"credsStore":"nope"}"#).unwrap();
        let err = store_in(d.path()).lookup("x.example").unwrap_err();
        assert!(
            err.to_string().contains("docker-credential-nope get"),
            "{err}"
        );
    }
}
