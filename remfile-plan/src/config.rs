//! The image config the planner tracks (the runtime part of an OCI image config, with Docker's
//! extension fields), reading it from an OCI/Docker config document and writing it back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::types::ConfigDelta;

/// BuildKit's default PATH for Linux, added when a base config has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image config (the `config` object of an OCI image config), in snake_case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// `User`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `ExposedPorts` keys (`80/tcp`), sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// `Env` (`K=V`), in order.
    pub env: Vec<String>,
    /// `Entrypoint` (`None`: unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd` (`None`: unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `Volumes` keys, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// `WorkingDir` (empty: unset, `/`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `Labels`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `StopSignal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `Shell` (Docker extension; `None`: `["/bin/sh", "-c"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// `Healthcheck` (Docker extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `OnBuild` triggers (Docker extension).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// The image's `author` (MAINTAINER); a field of the image, not of `config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Docker's `ArgsEscaped`: BuildKit sets it on every CMD (either form, any OS; checked with
    /// Docker 20.10, unchanged in newer BuildKit), and it is inherited like the rest.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
}

/// A health check; durations in nanoseconds (absent or 0: inherit/default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// `--interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// `--timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// `--start-period`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u64>,
    /// `--start-interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<u64>,
    /// `--retries`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// An invalid base config document.
#[derive(Debug, thiserror::Error)]
#[error("invalid image config: {0}")]
pub struct ConfigError(String);

fn strings(v: Option<&Value>) -> Result<Option<Vec<String>>, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ConfigError(format!("expected strings, found {x}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ConfigError(format!("expected an array, found {other}"))),
    }
}

fn keys(v: Option<&Value>) -> Result<Vec<String>, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(m.keys().cloned().collect()),
        Some(other) => Err(ConfigError(format!("expected an object, found {other}"))),
    }
}

fn string(v: Option<&Value>) -> Result<String, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ConfigError(format!("expected a string, found {other}"))),
    }
}

fn duration(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64).filter(|d| *d != 0)
}

impl ImageConfig {
    /// Reads an OCI/Docker image config document: either the whole image config
    /// (`{"architecture":..., "config": {...}}`) or just its `config` object
    /// (`{"Env": [...], "Cmd": [...]}`).
    pub fn from_oci_json(text: &str) -> Result<ImageConfig, ConfigError> {
        let v: Value = serde_json::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        let Value::Object(top) = v else {
            return Err(ConfigError("expected a JSON object".into()));
        };
        let author = top
            .get("author")
            .and_then(Value::as_str)
            .map(str::to_string);
        let cfg = match top.get("config") {
            Some(Value::Object(c)) => c.clone(),
            Some(Value::Null) => Map::new(),
            Some(_) => return Err(ConfigError("\"config\" is not an object".into())),
            None if top.contains_key("rootfs") || top.contains_key("architecture") => Map::new(),
            None => top,
        };
        let healthcheck = match cfg.get("Healthcheck") {
            Some(Value::Object(h)) => Some(Healthcheck {
                test: strings(h.get("Test"))?.unwrap_or_default(),
                interval: duration(h.get("Interval")),
                timeout: duration(h.get("Timeout")),
                start_period: duration(h.get("StartPeriod")),
                start_interval: duration(h.get("StartInterval")),
                retries: h
                    .get("Retries")
                    .and_then(Value::as_u64)
                    .filter(|r| *r != 0)
                    .map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
            }),
            _ => None,
        };
        let mut exposed_ports = keys(cfg.get("ExposedPorts"))?;
        exposed_ports.sort();
        let mut volumes = keys(cfg.get("Volumes"))?;
        volumes.sort();
        let labels = match cfg.get("Labels") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), string(Some(v))?)))
                .collect::<Result<BTreeMap<_, _>, ConfigError>>()?,
            _ => BTreeMap::new(),
        };
        let stop_signal = Some(string(cfg.get("StopSignal"))?).filter(|s| !s.is_empty());
        Ok(ImageConfig {
            user: string(cfg.get("User"))?,
            exposed_ports,
            env: strings(cfg.get("Env"))?.unwrap_or_default(),
            entrypoint: strings(cfg.get("Entrypoint"))?,
            cmd: strings(cfg.get("Cmd"))?,
            volumes,
            working_dir: string(cfg.get("WorkingDir"))?,
            labels,
            stop_signal,
            shell: strings(cfg.get("Shell"))?.filter(|s| !s.is_empty()),
            healthcheck,
            on_build: strings(cfg.get("OnBuild"))?.unwrap_or_default(),
            author,
            args_escaped: cfg.get("ArgsEscaped").and_then(Value::as_bool) == Some(true),
        })
    }

    /// The `config` object of an OCI image config (Docker's field names; `author` is not part
    /// of it). Empty fields are omitted.
    pub fn to_oci(&self) -> Value {
        let mut m = Map::new();
        if !self.user.is_empty() {
            m.insert("User".into(), json!(self.user));
        }
        if !self.exposed_ports.is_empty() {
            let ports: Map<String, Value> = self
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            m.insert("ExposedPorts".into(), Value::Object(ports));
        }
        if !self.env.is_empty() {
            m.insert("Env".into(), json!(self.env));
        }
        if let Some(e) = &self.entrypoint {
            m.insert("Entrypoint".into(), json!(e));
        }
        if let Some(c) = &self.cmd {
            m.insert("Cmd".into(), json!(c));
        }
        if self.args_escaped {
            m.insert("ArgsEscaped".into(), json!(true));
        }
        if !self.volumes.is_empty() {
            let vols: Map<String, Value> = self
                .volumes
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            m.insert("Volumes".into(), Value::Object(vols));
        }
        if !self.working_dir.is_empty() {
            m.insert("WorkingDir".into(), json!(self.working_dir));
        }
        if !self.labels.is_empty() {
            m.insert("Labels".into(), json!(self.labels));
        }
        if let Some(s) = &self.stop_signal {
            m.insert("StopSignal".into(), json!(s));
        }
        if let Some(s) = &self.shell {
            m.insert("Shell".into(), json!(s));
        }
        if let Some(h) = &self.healthcheck {
            let mut hm = Map::new();
            hm.insert("Test".into(), json!(h.test));
            for (k, v) in [
                ("Interval", h.interval),
                ("Timeout", h.timeout),
                ("StartPeriod", h.start_period),
                ("StartInterval", h.start_interval),
            ] {
                if let Some(v) = v {
                    hm.insert(k.into(), json!(v));
                }
            }
            if let Some(r) = h.retries {
                hm.insert("Retries".into(), json!(r));
            }
            m.insert("Healthcheck".into(), Value::Object(hm));
        }
        if !self.on_build.is_empty() {
            m.insert("OnBuild".into(), json!(self.on_build));
        }
        Value::Object(m)
    }

    /// The value of `key` in Env.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env.iter().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k == key).then_some(v)
        })
    }

    /// Sets `key` in Env: replaced in place when present, else appended (BuildKit's `addEnv`).
    pub fn env_set(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        for e in &mut self.env {
            let k = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            if k == key {
                *e = entry;
                return;
            }
        }
        self.env.push(entry);
    }

    /// Applies a config step's change.
    pub fn apply(&mut self, d: &ConfigDelta) {
        for e in &d.env {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            self.env_set(k, v);
        }
        for (k, v) in &d.labels {
            self.labels.insert(k.clone(), v.clone());
        }
        if d.clear_cmd {
            self.cmd = None;
        }
        if let Some(c) = &d.cmd {
            self.cmd = Some(c.clone());
            self.args_escaped = true;
        }
        if let Some(e) = &d.entrypoint {
            self.entrypoint = Some(e.clone());
        }
        if let Some(u) = &d.user {
            self.user.clone_from(u);
        }
        for p in &d.exposed_ports {
            if !self.exposed_ports.contains(p) {
                self.exposed_ports.push(p.clone());
            }
        }
        self.exposed_ports.sort();
        for v in &d.volumes {
            if !self.volumes.contains(v) {
                self.volumes.push(v.clone());
            }
        }
        self.volumes.sort();
        if let Some(s) = &d.stop_signal {
            self.stop_signal = Some(s.clone());
        }
        if let Some(s) = &d.shell {
            self.shell = Some(s.clone());
        }
        if let Some(h) = &d.healthcheck {
            self.healthcheck = Some(h.clone());
        }
        if let Some(t) = &d.on_build {
            self.on_build.push(t.clone());
        }
        if let Some(a) = &d.author {
            self.author = Some(a.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_image_config_and_inner_config() {
        let whole = r#"{"architecture":"amd64","os":"linux","author":"me",
            "config":{"Env":["PATH=/x:/y","A=1"],"Cmd":["sh"],"WorkingDir":"/w",
            "ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}},
            "Labels":{"a":"b"},"OnBuild":["RUN echo hi"],"Shell":["/bin/bash","-c"],
            "Healthcheck":{"Test":["CMD","true"],"Interval":30000000000,"Retries":3}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::from_oci_json(whole).unwrap();
        assert_eq!(c.env_get("PATH"), Some("/x:/y"));
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.exposed_ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(c.on_build, vec!["RUN echo hi"]);
        assert_eq!(c.author.as_deref(), Some("me"));
        assert_eq!(
            c.healthcheck.as_ref().unwrap().interval,
            Some(30_000_000_000)
        );
        let inner = ImageConfig::from_oci_json(r#"{"Env":["A=2"],"User":"1000"}"#).unwrap();
        assert_eq!(inner.user, "1000");
        assert_eq!(inner.env_get("A"), Some("2"));
        assert!(!c.args_escaped);
        // round trip through the OCI form
        let mut c = c;
        c.apply(&ConfigDelta {
            cmd: Some(vec!["x".into()]),
            ..ConfigDelta::default()
        });
        assert!(c.args_escaped, "CMD sets ArgsEscaped, as BuildKit does");
        let back = ImageConfig::from_oci_json(&c.to_oci().to_string()).unwrap();
        assert!(back.args_escaped);
        assert_eq!(back.env, c.env);
        assert_eq!(back.healthcheck, c.healthcheck);
        assert_eq!(back.volumes, c.volumes);
    }

    #[test]
    fn rejects_bad_documents() {
        assert!(ImageConfig::from_oci_json("[]").is_err());
        assert!(ImageConfig::from_oci_json(r#"{"Env":"x"}"#).is_err());
        assert!(ImageConfig::from_oci_json(r#"{"Env":[1]}"#).is_err());
        assert!(ImageConfig::from_oci_json("{").is_err());
    }

    #[test]
    fn env_set_replaces_in_place() {
        let mut c = ImageConfig {
            env: vec!["A=1".into(), "B=2".into()],
            ..ImageConfig::default()
        };
        c.env_set("A", "3");
        c.env_set("C", "4");
        assert_eq!(c.env, vec!["A=3", "B=2", "C=4"]);
    }
}
