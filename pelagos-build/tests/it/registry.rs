//! Builds against a real `docker-registry` on 127.0.0.1 (random port): base images pulled on
//! FROM / `COPY --from`, `--pull`, `--push` and `--output type=registry` checked with skopeo,
//! and the build cache moved between two stores through the registry.

use std::process::Command;

use test_support::Registry;

use crate::common::*;

/// A `docker-registry` on 127.0.0.1 without auth (see [`Registry`]), with a push helper.
pub struct LocalRegistry(Registry);

impl LocalRegistry {
    pub fn start() -> LocalRegistry {
        LocalRegistry(Registry::start(false))
    }

    /// `127.0.0.1:PORT/name`.
    pub fn name(&self, name: &str) -> String {
        self.0.name(name)
    }

    /// Pushes `src` of `e`'s store to `dest` (library push, as `image-store push` does).
    pub fn push_from(&self, e: &Env, src: &str, dest: &str) -> String {
        use image_store::registry;
        assert!(
            dest.starts_with(&self.name("")),
            "{dest} is not in this registry"
        );
        let s = e.store();
        let img = s
            .image(&image_store::Reference::parse(src).unwrap())
            .unwrap();
        let opts = registry::RegistryOptions {
            progress: false,
            ..Default::default()
        };
        registry::push(
            &s,
            &img,
            &image_store::Reference::parse(dest).unwrap(),
            &registry::PushOptions::default(),
            &opts,
        )
        .unwrap()
        .digest
        .to_string()
    }
}

/// `skopeo inspect` of a reference in the registry: the manifest digest.
fn skopeo_digest(reference: &str) -> String {
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

fn metadata(e: &Env) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(e.dir.path().join("m.json")).unwrap()).unwrap()
}

#[test]
fn missing_base_is_pulled_pushed_by_tag_and_by_output() {
    let reg = LocalRegistry::start();
    let base = reg.name("busybox:1");
    let base_digest = reg.push_from(&Env::new(), "busybox:local", &base);
    let e = Env::empty();
    e.write("f.txt", "hello\n");
    e.remfile(&format!(
        "FROM {base}\nCOPY f.txt /f\nCOPY --from={other} /bin/busybox /bb\n",
        other = reg.name("busybox:1")
    ));
    let app = reg.name("app:1");
    let meta = e.dir.path().join("m.json");
    let (v, _) = e.build_ok(&[
        "-t",
        &app,
        "--push",
        "--metadata-file",
        meta.to_str().unwrap(),
        "-o",
        &format!("type=registry,name={}", reg.name("other:2")),
    ]);
    // the base was pulled into the empty store, by its manifest digest
    let s = e.store();
    let pulled = s
        .image(&image_store::Reference::parse(&base).unwrap())
        .unwrap();
    assert_eq!(pulled.manifest_digest().as_str(), base_digest);
    let m = metadata(&e);
    assert_eq!(m["pulled"][0], format!("{base} {base_digest}"));
    // both destinations have the built manifest, unchanged
    let built = v["manifest_digest"].as_str().unwrap();
    assert_eq!(skopeo_digest(&app), built);
    assert_eq!(skopeo_digest(&reg.name("other:2")), built);
    let pushed = v["pushed"].as_array().unwrap();
    assert_eq!(pushed.len(), 2, "{v}");
    assert_eq!(pushed[0]["reference"], app);
    assert_eq!(pushed[0]["digest"], built);
    assert_eq!(m["pushed"], v["pushed"]);
    let r = e.rootfs(&app);
    assert_eq!(
        std::fs::read_to_string(r.path().join("f")).unwrap(),
        "hello\n"
    );
    assert!(r.path().join("bb").is_file(), "COPY --from=<image>");
}

#[test]
fn pull_flag_fetches_a_moved_tag_and_a_missing_image_fails() {
    let reg = LocalRegistry::start();
    let base = reg.name("base:1");
    let src = Env::new();
    let first = reg.push_from(&src, "busybox:local", &base);
    let e = Env::empty();
    e.remfile(&format!("FROM {base}\nLABEL x=1\n"));
    let meta = e.dir.path().join("m.json");
    let meta_arg = ["--metadata-file", meta.to_str().unwrap()];
    e.build_ok(&meta_arg);
    assert_eq!(metadata(&e)["pulled"][0], format!("{base} {first}"));
    // the tag moves to another image
    src.remfile("FROM busybox:local\nLABEL moved=yes\n");
    src.build_ok(&["-t", "moved:1"]);
    let second = reg.push_from(&src, "moved:1", &base);
    assert_ne!(first, second);
    // without --pull the stored base is used; with it, the registry's
    e.build_ok(&meta_arg);
    assert!(metadata(&e).get("pulled").is_none());
    e.build_ok(&[&meta_arg[..], &["--pull", "-t", "pulled:1"]].concat());
    assert_eq!(metadata(&e)["pulled"][0], format!("{base} {second}"));
    let cfg = e.config("pulled:1");
    assert_eq!(
        cfg.config
            .unwrap()
            .labels
            .unwrap_or_default()
            .get("moved")
            .map(String::as_str),
        Some("yes")
    );
    // an image the registry does not have: exit 1, the reference in the message
    e.remfile(&format!("FROM {}\n", reg.name("nothere:1")));
    let o = e.build(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nothere") && err.contains("not found"),
        "{err}"
    );
    // a missing --cache-from is only a warning
    e.remfile(&format!("FROM {base}\n"));
    let (_, err) = e.build_ok(&[
        "--cache-from",
        &format!("type=registry,ref={}", reg.name("nocache:1")),
    ]);
    assert!(err.contains("WARNING: --cache-from"), "{err}");
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn cache_to_registry_then_cache_from_on_a_clean_store() {
    let reg = LocalRegistry::start();
    let base = reg.name("busybox:1");
    reg.push_from(&Env::new(), "busybox:local", &base);
    let text = format!(
        "FROM {base} AS b\nRUN echo built > /b\nFROM {base}\nCOPY --from=b /b /b\nCOPY f.txt /f\nRUN cat /b /f > /both\n"
    );
    let cache_max = reg.name("cache:max");
    let cache_min = reg.name("cache:min");
    let a = Env::empty();
    a.write("f.txt", "ctx\n");
    a.remfile(&text);
    let (va, err) = a.build_ok(&[
        "--cache-to",
        &format!("type=registry,ref={cache_max},mode=max"),
        "--cache-to",
        &format!("type=registry,ref={cache_min}"),
    ]);
    assert_eq!(count_cached(&err), (0, 4), "{err}");
    // a clean store hits every step from the registry cache (max: both stages)
    let b = Env::empty();
    b.write("f.txt", "ctx\n");
    b.remfile(&text);
    let (vb, err) = b.build_ok(&[
        "-t",
        "fromcache:1",
        "--cache-from",
        &format!("type=registry,ref={cache_max}"),
    ]);
    assert_eq!(count_cached(&err), (4, 4), "{err}");
    assert_eq!(va["manifest_digest"], vb["manifest_digest"]);
    // min: only the final stage's steps; the builder stage's RUN runs again
    let c = Env::empty();
    c.write("f.txt", "ctx\n");
    c.remfile(&text);
    let (_, err) = c.build_ok(&["--cache-from", &format!("type=registry,ref={cache_min}")]);
    assert_eq!(count_cached(&err), (3, 4), "{err}");
    let r = b.rootfs("fromcache:1");
    assert_eq!(
        std::fs::read_to_string(r.path().join("both")).unwrap(),
        "built\nctx\n"
    );
}
