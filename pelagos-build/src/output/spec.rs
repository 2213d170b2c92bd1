//! `--output` specs as buildx reads them: one CSV record (`"name=a,b"` quotes a value with
//! commas, `""` is a quote), keys lowercased, then BuildKit's attributes per exporter type.

use std::path::{Path, PathBuf};

use image_store::registry::LayerCompression;

use crate::cli::UsageError;

/// Kinds of `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// An OCI image layout (tar, or a directory with `tar=false`).
    Oci,
    /// A `docker load` archive; without `dest`, the image in the store (buildx's load).
    Docker,
    /// The flattened root filesystem written into a directory.
    Local,
    /// The flattened root filesystem as a tar file.
    Tar,
    /// The image in the store under `name=` (BuildKit's image exporter), pushed with
    /// `push=true`.
    Image,
    /// `type=image,push=true`.
    Registry,
}

impl OutputKind {
    /// The name as written after `type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Oci => "oci",
            OutputKind::Docker => "docker",
            OutputKind::Local => "local",
            OutputKind::Tar => "tar",
            OutputKind::Image => "image",
            OutputKind::Registry => "registry",
        }
    }
}

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutputSpec {
    /// What to write.
    pub kind: OutputKind,
    /// Where (empty for `image`, `registry` and `docker` without `dest`).
    pub dest: PathBuf,
    /// For `oci`: a tar file (true, default) or a layout directory (false).
    pub tar: bool,
    /// `name=`: image names, comma-separated (BuildKit's), else the `-t` tags.
    pub name: Option<String>,
    /// `push=true` (always for `registry`).
    pub push: bool,
    /// `store=false` of `image`: not named in the store.
    pub store: bool,
    /// `registry.insecure=true`: plain HTTP or unverified TLS for the push.
    pub insecure: bool,
    /// `compression=`: the layers of the exported or pushed image (`None`: as stored).
    pub compression: Option<LayerCompression>,
    /// `compression-level=`.
    pub compression_level: Option<u32>,
    /// `force-compression=true` (implied here: see the README).
    pub force_compression: bool,
    /// `oci-mediatypes=`: OCI (true) or Docker media types; `None`: the type's default (OCI,
    /// except `docker`).
    pub oci_mediatypes: Option<bool>,
}

impl OutputSpec {
    fn new(kind: OutputKind, dest: PathBuf, tar: bool) -> OutputSpec {
        OutputSpec {
            kind,
            dest,
            tar,
            name: None,
            push: kind == OutputKind::Registry,
            store: true,
            insecure: false,
            compression: None,
            compression_level: None,
            force_compression: false,
            oci_mediatypes: None,
        }
    }

    /// Whether the output goes to stdout (`dest=-`: a tar stream, as BuildKit's).
    pub fn is_stdout(&self) -> bool {
        self.tar && self.dest.as_os_str() == "-"
    }

    /// Whether the output writes a file or directory (not `image`/`registry`, not `docker`
    /// into the store).
    pub fn is_file(&self) -> bool {
        !self.dest.as_os_str().is_empty()
    }

    /// The names of `name=` (comma-separated), empty when not given.
    pub fn names(&self) -> Vec<String> {
        self.name
            .as_deref()
            .map(|n| {
                n.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the image must use OCI media types (`oci-mediatypes`, the type's default, and
    /// zstd layers, which only OCI types can carry: BuildKit turns them on then).
    pub fn oci_types(&self) -> bool {
        self.compression == Some(LayerCompression::Zstd)
            || self
                .oci_mediatypes
                .unwrap_or(self.kind != OutputKind::Docker)
    }

    /// Parses a spec: `type=oci|docker|local|tar|image|registry,KEY=VALUE,...`, a bare `PATH`
    /// (Docker's shorthand for `type=local,dest=PATH`) or `-` (`type=tar,dest=-`). As in
    /// BuildKit, `dest=-` (the default of `oci` and `tar`) is stdout for the tar kinds and an
    /// error for the directory kinds; `docker` without `dest` is the image in the store.
    pub fn parse(spec: &str) -> Result<Self, UsageError> {
        let err = |reason: &str| UsageError::Output {
            spec: crate::git::redact(spec),
            reason: reason.into(),
        };
        if spec == "-" {
            return Ok(OutputSpec::new(OutputKind::Tar, spec.into(), true));
        }
        if !spec.contains('=') {
            if spec.is_empty() {
                return Err(err("empty"));
            }
            return Ok(OutputSpec::new(OutputKind::Local, spec.into(), false));
        }
        let mut fields = Vec::new();
        for f in csv_fields(spec).map_err(|e| err(&e))? {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| err(&format!("invalid value {f:?}: expected KEY=VALUE")))?;
            fields.push((k.trim().to_ascii_lowercase(), v.to_string()));
        }
        let kind = match fields.iter().rev().find(|(k, _)| k == "type") {
            Some((_, v)) => match v.as_str() {
                "oci" => OutputKind::Oci,
                "docker" => OutputKind::Docker,
                "local" => OutputKind::Local,
                "tar" => OutputKind::Tar,
                "image" => OutputKind::Image,
                "registry" => OutputKind::Registry,
                _ => {
                    return Err(err(&format!(
                        "unknown type {v:?} (oci, docker, local, tar, image or registry)"
                    )));
                }
            },
            None => return Err(err("missing type=")),
        };
        let image_like = matches!(kind, OutputKind::Image | OutputKind::Registry);
        let archive = matches!(kind, OutputKind::Oci | OutputKind::Docker);
        let mut o = OutputSpec::new(kind, PathBuf::new(), kind != OutputKind::Local);
        let mut dest = None;
        let mut unknown = Vec::new();
        let mut unsupported = Vec::new();
        for (k, v) in &fields {
            let b = |v: &str| {
                parse_bool(v).ok_or_else(|| err(&format!("{k} must be true or false, not {v:?}")))
            };
            match k.as_str() {
                "type" => {}
                "dest" if !image_like => {
                    if v.is_empty() {
                        return Err(err("empty dest"));
                    }
                    dest = Some(PathBuf::from(v));
                }
                "tar" if archive => o.tar = b(v)?,
                "name" if archive || image_like => {
                    if v.trim().is_empty() {
                        return Err(err("empty name"));
                    }
                    o.name = Some(v.clone());
                }
                "push" if image_like => o.push = b(v)? || kind == OutputKind::Registry,
                "store" if image_like => o.store = b(v)?,
                "registry.insecure" if image_like => o.insecure = b(v)?,
                "compression" if archive || image_like => {
                    o.compression = Some(match v.as_str() {
                        "gzip" => LayerCompression::Gzip,
                        "zstd" => LayerCompression::Zstd,
                        "uncompressed" => LayerCompression::None,
                        "estargz" => {
                            return Err(err(
                                "compression=estargz is not supported (gzip, zstd or uncompressed)",
                            ));
                        }
                        _ => {
                            return Err(err(&format!(
                                "unsupported compression type {v:?} (gzip, zstd or uncompressed)"
                            )));
                        }
                    });
                }
                "compression-level" if archive || image_like => {
                    o.compression_level =
                        Some(v.parse::<u32>().map_err(|_| {
                            err(&format!("compression-level {v:?} is not a number"))
                        })?);
                }
                "force-compression" if archive || image_like => o.force_compression = b(v)?,
                "oci-mediatypes" if archive || image_like => o.oci_mediatypes = Some(b(v)?),
                // BuildKit's, with nothing to do here: one platform per build, no build info
                "platform-split" if !image_like => {
                    b(v)?;
                }
                "buildinfo" | "buildinfo-attrs" | "unpack" if archive || image_like => {
                    b(v)?;
                }
                k if k.starts_with("annotation")
                    || matches!(
                        k,
                        "push-by-digest"
                            | "name-canonical"
                            | "dangling-name-prefix"
                            | "oci-artifact"
                            | "rewrite-timestamp"
                            | "attestation-inline"
                    ) =>
                {
                    unsupported.push(format!("{k:?}"));
                }
                _ => unknown.push(format!("{k:?}")),
            }
        }
        if !unknown.is_empty() {
            return Err(err(&format!(
                "unknown attribute{} {} for type={}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                kind.as_str()
            )));
        }
        if !unsupported.is_empty() {
            let (noun, verb) = if unsupported.len() > 1 {
                ("attributes", "are")
            } else {
                ("attribute", "is")
            };
            return Err(err(&format!(
                "{noun} {} {verb} not supported by pelagos-build",
                unsupported.join(", ")
            )));
        }
        if let Some(l) = o.compression_level {
            let max = match o.compression {
                Some(LayerCompression::Zstd) => 22,
                _ => 9,
            };
            if l > max {
                return Err(err(&format!(
                    "compression-level {l} is out of range (0-{max})"
                )));
            }
        }
        if kind == OutputKind::Docker
            && (o.compression.is_some()
                || o.compression_level.is_some()
                || o.oci_mediatypes == Some(true))
        {
            return Err(err(
                "type=docker writes a docker-save archive (uncompressed layers, no manifest blobs): compression and oci-mediatypes=true apply to type=oci, image and registry",
            ));
        }
        if image_like {
            return Ok(o);
        }
        if !o.tar && !matches!(kind, OutputKind::Oci | OutputKind::Local) {
            return Err(err("tar=false applies only to type=oci"));
        }
        let to_file = o.tar && kind != OutputKind::Local;
        o.dest = match dest {
            Some(d) if d.as_os_str() == "-" && !to_file => {
                return Err(err("dest cannot be stdout for a directory output"));
            }
            Some(d) => d,
            // buildx: the tar kinds default to stdout; docker loads the image (into the store
            // here, where it already is)
            None if kind == OutputKind::Docker => PathBuf::new(),
            None if to_file => PathBuf::from("-"),
            None => return Err(err("missing dest=")),
        };
        o.tar = to_file;
        Ok(o)
    }

    /// Checks `dest` before anything is built: a directory output onto an existing file, or
    /// a file output onto an existing directory, is refused.
    pub fn check_dest(&self) -> Result<(), UsageError> {
        if !self.is_file() || self.is_stdout() {
            return Ok(());
        }
        let err = |reason: &str| UsageError::Output {
            spec: self.dest.display().to_string(),
            reason: reason.into(),
        };
        let md = match std::fs::metadata(&self.dest) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return check_parent(&self.dest, &err);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(err("a parent of the destination is not a directory"));
            }
            Err(e) => return Err(err(&e.to_string())),
        };
        match (self.tar, md.is_dir()) {
            (true, true) => Err(err(&format!(
                "type={} writes a file, but the destination is a directory",
                self.kind.as_str()
            ))),
            (false, false) => Err(err(&format!(
                "type={} writes a directory, but the destination exists and is not a directory",
                self.kind.as_str()
            ))),
            _ => Ok(()),
        }
    }
}

/// A missing destination whose nearest existing ancestor is not a directory.
fn check_parent(dest: &Path, err: &dyn Fn(&str) -> UsageError) -> Result<(), UsageError> {
    let mut p = dest.parent();
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(err(&format!("{} is not a directory", d.display())));
            }
            Err(_) => p = d.parent(),
        }
    }
    Ok(())
}

/// Go's `strconv.ParseBool`, with BuildKit's empty value meaning true.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The fields of one CSV record as Go's `encoding/csv` reads it (buildx's parser): `,`
/// separates, a field starting with `"` is quoted (`""` is a quote inside), a quote inside an
/// unquoted field is an error.
pub fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(_) => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => {
                        out.push(field);
                        break;
                    }
                    Some('"') => return Err("bare \" in non-quoted-field".into()),
                    Some(c) => field.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_like_go() {
        assert_eq!(csv_fields("a=1,b=2").unwrap(), ["a=1", "b=2"]);
        assert_eq!(
            csv_fields("type=image,\"name=a,b\",push=true").unwrap(),
            ["type=image", "name=a,b", "push=true"]
        );
        assert_eq!(
            csv_fields("\"x=say \"\"hi\"\"\"").unwrap(),
            ["x=say \"hi\""]
        );
        assert_eq!(csv_fields("a=1,").unwrap(), ["a=1", ""]);
        assert!(csv_fields("name=\"a,b\"").is_err());
        assert!(csv_fields("\"a=1").is_err());
        assert!(csv_fields("\"a=1\"x").is_err());
    }

    #[test]
    fn specs() {
        let o = OutputSpec::parse("type=oci,dest=/x/o,tar=false,name=app:1").unwrap();
        assert_eq!(o.kind, OutputKind::Oci);
        assert!(!o.tar && o.is_file());
        assert_eq!(o.name.as_deref(), Some("app:1"));
        assert!(OutputSpec::parse("type=docker,dest=d.tar").unwrap().tar);
        assert!(!OutputSpec::parse("type=local,dest=d").unwrap().tar);
        assert_eq!(OutputSpec::parse("outdir").unwrap().kind, OutputKind::Local);
        for spec in [
            "-",
            "type=tar,dest=-",
            "type=tar",
            "type=oci",
            "type=oci,dest=-",
            "type=docker,dest=-",
        ] {
            assert!(OutputSpec::parse(spec).unwrap().is_stdout(), "{spec}");
        }
        // docker without dest: the image in the store, no file
        let d = OutputSpec::parse("type=docker,name=x:1").unwrap();
        assert!(!d.is_file() && !d.is_stdout() && !d.oci_types());
        // keys are case-insensitive (buildx lowercases them)
        assert_eq!(
            OutputSpec::parse("TYPE=local,Dest=o").unwrap().kind,
            OutputKind::Local
        );
    }

    #[test]
    fn image_and_registry_attributes() {
        let o = OutputSpec::parse("type=image,\"name=a:1,b:2\",push=true,compression=zstd,compression-level=19,force-compression=true,oci-mediatypes=false").unwrap();
        assert_eq!(o.kind, OutputKind::Image);
        assert_eq!(o.names(), ["a:1", "b:2"]);
        assert!(o.push && o.force_compression && o.store);
        assert_eq!(o.compression, Some(LayerCompression::Zstd));
        assert_eq!(o.compression_level, Some(19));
        // zstd needs OCI media types: BuildKit turns them on
        assert!(o.oci_types());
        let r = OutputSpec::parse(
            "type=registry,name=r/x,oci-mediatypes=false,compression=uncompressed",
        )
        .unwrap();
        assert!(r.push && !r.oci_types());
        assert_eq!(r.compression, Some(LayerCompression::None));
        // push= with an empty value is true (BuildKit); registry always pushes
        assert!(OutputSpec::parse("type=image,push=").unwrap().push);
        assert!(!OutputSpec::parse("type=image").unwrap().push);
        assert!(OutputSpec::parse("type=registry,push=false").unwrap().push);
        assert!(!OutputSpec::parse("type=image,store=false").unwrap().store);
        assert!(
            OutputSpec::parse("type=oci,oci-mediatypes=0")
                .unwrap()
                .oci_mediatypes
                == Some(false)
        );
    }

    #[test]
    fn bad_specs_name_the_attribute() {
        let e = OutputSpec::parse("type=oci,dest=x,foo=1,Bar=2")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown attributes \"foo\", \"bar\" for type=oci"),
            "{e}"
        );
        let e = OutputSpec::parse("type=image,annotation.a=b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"annotation.a\" is not supported"), "{e}");
        for bad in [
            "type=local,dest=-",
            "type=oci,tar=false,dest=-",
            "type=oci,tar=false",
            "type=local",
            "dest=x",
            "type=zip,dest=x",
            "type=tar,dest=x,tar=false",
            "type=oci,dest=",
            "type=registry,dest=x",
            "type=registry,name=",
            "type=oci,dest=x,push=true",
            "type=local,dest=x,compression=gzip",
            "type=oci,compression=lz4",
            "type=oci,compression=estargz",
            "type=oci,compression=gzip,compression-level=10",
            "type=oci,compression=zstd,compression-level=23",
            "type=oci,compression-level=x",
            "type=image,push=maybe",
            "type=docker,compression=zstd",
            "type=docker,oci-mediatypes=true",
            "type=image,name=a,b",
            "type=image,name=\"a,b\"",
            "",
        ] {
            assert!(OutputSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_are_checked_before_the_build() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let spec = |s: String| OutputSpec::parse(&s).unwrap();
        let f = file.display();
        let dir = d.path().display();
        assert!(spec(format!("type=local,dest={f}")).check_dest().is_err());
        assert!(
            spec(format!("type=oci,tar=false,dest={f}"))
                .check_dest()
                .is_err()
        );
        assert!(
            spec(format!("type=local,dest={f}/sub"))
                .check_dest()
                .is_err()
        );
        for k in ["oci", "docker", "tar"] {
            assert!(
                spec(format!("type={k},dest={dir}")).check_dest().is_err(),
                "{k}"
            );
            assert!(
                spec(format!("type={k},dest={f}")).check_dest().is_ok(),
                "{k}"
            );
        }
        assert!(spec(format!("type=local,dest={dir}")).check_dest().is_ok());
        assert!(
            spec(format!("type=local,dest={dir}/new/deeper"))
                .check_dest()
                .is_ok()
        );
        assert!(spec("type=oci".into()).check_dest().is_ok());
    }
}
