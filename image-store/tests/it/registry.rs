//! Registry pull/push against a real `docker-registry` (with and without basic auth), skopeo
//! as the independent client, and a tiny HTTP server for token auth and broken answers.

#[path = "registry_fake.rs"]
mod fake;
#[path = "registry_harness.rs"]
mod harness;

use std::path::Path;
use std::time::Duration;

use image_store::registry::{
    Credential, CredentialStore, LayerCompression, RegistryError, RegistryOptions, ensure_image,
    export_cache, import_cache, login, pull, recompress_layer,
};
use image_store::{
    CacheRecord, Descriptor, Digest, MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST,
    Reference, Store,
};
use serde_json::{Value, json};

use crate::helpers::{TestStore, import_busybox, tar_of};
use fake::{Content, FakeServer, Response};
use harness::{Cut, CutProxy, PASSWORD, Registry, TlsRegistry, USER, skopeo, skopeo_json};

fn opts() -> RegistryOptions {
    RegistryOptions {
        credentials: CredentialStore::anonymous(),
        progress: false,
        backoff: Duration::from_millis(10),
        retries: 3,
        ..RegistryOptions::default()
    }
}

/// Runs the CLI with its own DOCKER_CONFIG; returns (success, stdout JSON or Null, stderr).
fn cli(s: &TestStore, args: &[&str]) -> (bool, Value, String) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = s
        .cmd(&a)
        .env("DOCKER_CONFIG", s.path("docker-config"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (
        o.status.success(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn cli_ok(s: &TestStore, args: &[&str]) -> Value {
    let (ok, v, err) = cli(s, args);
    assert!(ok, "{args:?} failed: {err}");
    v
}

fn blob_count(root: &Path) -> usize {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count()
}

fn tmp_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .filter_map(Result::ok)
        .all(|e| e.file_name().to_string_lossy().ends_with(".lease"))
}

#[test]
fn push_pull_round_trip_identical_digests_and_skips_present_blobs() {
    let reg = Registry::start(false);
    let a = TestStore::new();
    let imp = import_busybox(&a);
    let dest = format!("{}/test/busybox:1", reg.addr());
    let p = cli_ok(&a, &["push", "-q", "busybox", &dest]);
    assert_eq!(p["version"], 1);
    assert_eq!(
        p["digest"], imp["manifest_digest"],
        "stored manifest pushed as is"
    );
    assert_eq!(p["blobs_uploaded"], 2);
    // a second push only HEADs
    let p2 = cli_ok(&a, &["push", "-q", "busybox", &dest]);
    assert_eq!(p2["digest"], p["digest"]);
    assert_eq!(
        (p2["blobs_uploaded"].as_u64(), p2["blobs_existing"].as_u64()),
        (Some(0), Some(2))
    );

    let b = TestStore::new();
    let r = cli_ok(&b, &["pull", "-q", &dest]);
    assert_eq!(r["manifest_digest"], p["digest"]);
    assert_eq!(r["image_id"], imp["image_id"]);
    assert_eq!(r["blobs_downloaded"], 2);
    assert_eq!(r["tagged"], true);
    let r2 = cli_ok(&b, &["pull", "-q", &dest]);
    assert_eq!(r2["blobs_downloaded"], 0);
    // the pulled image is in the store under the reference, intact
    let insp = b.json(&["inspect", &dest]);
    assert_eq!(insp["manifest_descriptor"]["digest"], p["digest"]);
    // the layers unpack on demand (verified against the config's diff_ids)
    let lowers = b.json(&["lowers", &dest]);
    let lower = lowers["lowers"][0].as_str().unwrap();
    assert!(Path::new(lower).join("bin/busybox").is_file(), "{lowers}");
    b.fsck_clean();
    // by digest: resolved, not tagged
    let by_digest = format!(
        "{}/test/busybox@{}",
        reg.addr(),
        p["digest"].as_str().unwrap()
    );
    let c = TestStore::new();
    let r3 = cli_ok(&c, &["pull", "-q", &by_digest]);
    assert_eq!(r3["tagged"], false);
    assert_eq!(r3["manifest_digest"], p["digest"]);
    // listed under that digest reference (as containerd names it) and kept by gc until removed
    let ls = c.json(&["ls"]);
    assert_eq!(ls["images"][0]["reference"], by_digest.as_str(), "{ls}");
    let gc = c.json(&["gc", "--grace", "0"]);
    assert_eq!(gc["blobs_removed"], 0, "{gc}");
    assert_eq!(
        c.json(&["inspect", &by_digest])["image_id"],
        imp["image_id"]
    );
    c.fsck_clean();
    c.ok(&["rm", &by_digest]);
    let gc = c.json(&["gc", "--grace", "0"]);
    assert_eq!(gc["blobs_removed"], 3, "{gc}");
    // a builder's FROM: pulled once, then taken from the store; --pull pulls again
    let dd = tempfile::tempdir().unwrap();
    let st = Store::open(dd.path()).unwrap();
    let r = Reference::parse(&dest).unwrap();
    let (img, rep) = ensure_image(&st, &r, false, &opts()).unwrap();
    assert_eq!(
        img.manifest_digest().as_str(),
        p["digest"].as_str().unwrap()
    );
    assert!(rep.is_some());
    let (img2, rep2) = ensure_image(&st, &r, false, &opts()).unwrap();
    assert!(rep2.is_none());
    assert_eq!(img2.config_digest, img.config_digest);
    let (_, rep3) = ensure_image(&st, &r, true, &opts()).unwrap();
    assert_eq!(rep3.unwrap().blobs_downloaded, 0);
    // by digest too
    let rd = Reference::parse(&by_digest).unwrap();
    let (img4, _) = ensure_image(&st, &rd, false, &opts()).unwrap();
    assert_eq!(img4.config_digest, img.config_digest);
    // text mode prints the digest
    let o = a
        .cmd(&["push", "-q", "busybox", &dest])
        .env("DOCKER_CONFIG", a.path("docker-config"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        p["digest"].as_str().unwrap()
    );
}

#[test]
fn skopeo_inspects_and_copies_what_we_pushed() {
    let reg = Registry::start(false);
    let a = TestStore::new();
    import_busybox(&a);
    let dest = format!("{}/sk/ours:1", reg.addr());
    let meta = a.path("meta.json");
    let p = cli_ok(
        &a,
        &[
            "push",
            "-q",
            "busybox",
            &dest,
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    let m: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["digest"], p["digest"]);
    let docker_ref = format!("docker://{dest}");
    let v = skopeo_json(&["inspect", "--tls-verify=false", &docker_ref]);
    assert_eq!(v["Digest"], p["digest"]);
    let raw = skopeo_json(&["inspect", "--raw", "--tls-verify=false", &docker_ref]);
    assert_eq!(raw["mediaType"], MEDIA_TYPE_MANIFEST);
    let out = a.path("copied");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &docker_ref,
        &format!("oci:{}:x", out.display()),
    ]);
    let v = skopeo_json(&["inspect", &format!("oci:{}:x", out.display())]);
    assert_eq!(v["Digest"], p["digest"]);
}

#[test]
fn pulls_what_skopeo_pushed_gzip_zstd_and_docker_v2s2() {
    let a = TestStore::new();
    let imp = import_busybox(&a);
    let src = format!("oci:{}:docker.io/library/busybox:latest", a.root.display());
    for (name, extra) in [
        ("gzip", vec![]),
        (
            "zstd",
            vec!["--dest-compress", "--dest-compress-format", "zstd"],
        ),
        ("v2s2", vec!["--format", "v2s2"]),
    ] {
        // a fresh registry each time: skopeo would reuse the gzip blob it pushed before
        let reg = Registry::start(false);
        let dest = format!("{}/skopeo/{name}:1", reg.addr());
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        args.extend(extra.iter().copied());
        let d = format!("docker://{dest}");
        args.extend([src.as_str(), d.as_str()]);
        skopeo(&args);
        let want = skopeo_json(&["inspect", "--tls-verify=false", &d]);
        let b = TestStore::new();
        let r = cli_ok(&b, &["pull", "-q", &dest]);
        assert_eq!(r["manifest_digest"], want["Digest"], "{name}");
        let insp = b.json(&["inspect", &dest]);
        let layer_mt = insp["manifest"]["layers"][0]["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match name {
            "zstd" => assert!(layer_mt.ends_with("+zstd"), "{layer_mt}"),
            "v2s2" => {
                assert_eq!(r["media_type"], MEDIA_TYPE_DOCKER_MANIFEST);
                assert!(
                    layer_mt.starts_with("application/vnd.docker."),
                    "{layer_mt}"
                );
            }
            _ => assert!(layer_mt.ends_with("+gzip"), "{layer_mt}"),
        }
        // the same uncompressed content whatever the compression
        let cfg: Value = serde_json::from_str(&b.ok(&["config", &dest])).unwrap();
        let orig: Value = serde_json::from_str(&a.ok(&["config", "busybox"])).unwrap();
        assert_eq!(cfg["rootfs"], orig["rootfs"], "{name}");
        assert_eq!(r["layers"], 1);
        b.fsck_clean();
        let _ = &imp;
    }
}

#[test]
fn basic_auth_login_push_pull_logout() {
    let reg = Registry::start(true);
    let a = TestStore::new();
    import_busybox(&a);
    let dest = format!("{}/private/bb:1", reg.addr());
    let (ok, _, err) = cli(&a, &["push", "-q", "busybox", &dest]);
    assert!(!ok);
    assert!(err.contains("log in"), "{err}");
    // a wrong password is refused and not stored
    let (ok, _, err) = cli(
        &a,
        &["login", &reg.addr(), "-u", USER, "-p", "wrong-password"],
    );
    assert!(!ok, "wrong password accepted");
    assert!(!err.contains("wrong-password"), "secret printed: {err}");
    assert!(!a.path("docker-config/config.json").exists());
    let l = cli_ok(&a, &["login", &reg.addr(), "-u", USER, "-p", PASSWORD]);
    assert_eq!(l["changed"], true);
    let cfg = std::fs::read_to_string(a.path("docker-config/config.json")).unwrap();
    assert!(cfg.contains(&reg.addr()), "{cfg}");
    let p = cli_ok(&a, &["push", "-q", "busybox", &dest]);
    // another store using the same config.json pulls
    let b = TestStore::new();
    std::fs::create_dir_all(b.path("docker-config")).unwrap();
    std::fs::copy(
        a.path("docker-config/config.json"),
        b.path("docker-config/config.json"),
    )
    .unwrap();
    let r = cli_ok(&b, &["pull", "-q", &dest]);
    assert_eq!(r["manifest_digest"], p["digest"]);
    let lo = cli_ok(&b, &["logout", &reg.addr()]);
    assert_eq!(lo["changed"], true);
    let c = TestStore::new();
    std::fs::create_dir_all(c.path("docker-config")).unwrap();
    std::fs::copy(
        b.path("docker-config/config.json"),
        c.path("docker-config/config.json"),
    )
    .unwrap();
    let (ok, _, err) = cli(&c, &["pull", "-q", &dest]);
    assert!(!ok, "pull after logout succeeded");
    assert!(err.contains("authentication"), "{err}");
    // skopeo agrees with what we pushed
    let v = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("--creds={USER}:{PASSWORD}"),
        &format!("docker://{dest}"),
    ]);
    assert_eq!(v["Digest"], p["digest"]);
}

#[test]
fn push_docker_format_and_zstd_recompression_is_remembered() {
    let reg = Registry::start(false);
    let a = TestStore::new();
    import_busybox(&a);
    let orig_cfg: Value = serde_json::from_str(&a.ok(&["config", "busybox"])).unwrap();

    let d1 = format!("{}/fmt/docker:1", reg.addr());
    let p = cli_ok(&a, &["push", "-q", "busybox", &d1, "--format", "docker"]);
    assert_eq!(p["media_type"], MEDIA_TYPE_DOCKER_MANIFEST);
    let raw = skopeo_json(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{d1}"),
    ]);
    assert_eq!(raw["mediaType"], MEDIA_TYPE_DOCKER_MANIFEST);
    assert_eq!(
        raw["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    // docker format cannot carry zstd
    let (ok, _, err) = cli(
        &a,
        &[
            "push",
            "-q",
            "busybox",
            &d1,
            "--format",
            "docker",
            "--compression",
            "zstd",
        ],
    );
    assert!(!ok);
    assert!(err.contains("zstd"), "{err}");

    let d2 = format!("{}/fmt/zstd:1", reg.addr());
    let z = cli_ok(&a, &["push", "-q", "busybox", &d2, "--compression", "zstd"]);
    assert_eq!(z["layers_recompressed"], 1);
    let z2 = cli_ok(&a, &["push", "-q", "busybox", &d2, "--compression", "zstd"]);
    assert_eq!(z2["layers_recompressed"], 0, "mapping not remembered");
    assert_eq!(z2["digest"], z["digest"], "recompression not deterministic");
    assert_eq!(z2["blobs_uploaded"], 0);
    let raw = skopeo_json(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{d2}"),
    ]);
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // skopeo verifies every blob while copying
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{d2}"),
        &format!("oci:{}:z", a.path("zcopy").display()),
    ]);
    // another clean store recompresses to the same bytes
    let b = TestStore::new();
    import_busybox(&b);
    let zb = cli_ok(
        &b,
        &[
            "push",
            "-q",
            "busybox",
            &format!("{}/fmt/zstd-b:1", reg.addr()),
            "--compression",
            "zstd",
        ],
    );
    // (the configs differ: import records its time) the zstd layer is the same bytes
    let layer_of = |r: &str| {
        skopeo_json(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{r}"),
        ])["layers"][0]["digest"]
            .clone()
    };
    assert_eq!(
        layer_of(&format!("{}/fmt/zstd-b:1", reg.addr())),
        layer_of(&d2)
    );
    assert_eq!(zb["layers_recompressed"], 1);
    // pulled back: same diff_ids
    let c = TestStore::new();
    cli_ok(&c, &["pull", "-q", &d2]);
    let cfg: Value = serde_json::from_str(&c.ok(&["config", &d2])).unwrap();
    assert_eq!(cfg["rootfs"], orig_cfg["rootfs"]);
    c.fsck_clean();
    a.fsck_clean();
}

#[test]
fn chunked_push_and_cross_repository_mount() {
    let reg = Registry::start(false);
    let a = TestStore::new();
    import_busybox(&a);
    let d1 = format!("{}/chunk/one:1", reg.addr());
    let p = cli_ok(&a, &["push", "-q", "busybox", &d1, "--chunk-size", "65536"]);
    assert_eq!(p["blobs_uploaded"], 2);
    let b = TestStore::new();
    let r = cli_ok(&b, &["pull", "-q", &d1]);
    assert_eq!(r["manifest_digest"], p["digest"]);
    // the layer exists in chunk/one: pushing to chunk/two mounts it
    let d2 = format!("{}/chunk/two:1", reg.addr());
    let m = cli_ok(&a, &["push", "-q", "busybox", &d2]);
    assert_eq!(m["blobs_mounted"], 2, "{m}");
    assert_eq!(m["blobs_uploaded"], 0);
    // a store that pulled from chunk/one mounts too when pushing elsewhere
    let m2 = cli_ok(
        &b,
        &["push", "-q", &d1, &format!("{}/chunk/three:1", reg.addr())],
    );
    assert!(m2["blobs_mounted"].as_u64().unwrap() >= 1, "{m2}");
    let v = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/chunk/two:1", reg.addr()),
    ]);
    assert_eq!(v["Digest"], p["digest"]);
}

#[test]
fn interrupted_push_is_restarted_and_completes() {
    let reg = Registry::start(false);
    let a = TestStore::new();
    import_busybox(&a);
    // without retries the cut connection fails the push
    let proxy = CutProxy::start(reg.port, 300_000);
    let dest = format!("{}/cut/bb:1", proxy.addr());
    let (ok, _, err) = cli(&a, &["push", "-q", "--retries", "0", "busybox", &dest]);
    assert!(!ok, "push through a cut connection succeeded");
    assert!(proxy.cut_done.load(std::sync::atomic::Ordering::Relaxed));
    assert!(!err.is_empty());
    // restarted: completes
    let p = cli_ok(&a, &["push", "-q", "busybox", &dest]);
    let direct = format!("{}/cut/bb:1", reg.addr());
    let v = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{direct}"),
    ]);
    assert_eq!(v["Digest"], p["digest"]);
    let b = TestStore::new();
    let r = cli_ok(&b, &["pull", "-q", &direct]);
    assert_eq!(r["manifest_digest"], p["digest"]);

    // chunked, killed part way (no retries): the restarted push continues the upload session
    // where the registry stopped instead of sending everything again
    let proxy3 = CutProxy::start_with(reg.port, Cut::AtRequest(b"PATCH ", 4));
    let dest3 = format!("{}/cut/resumed:1", proxy3.addr());
    let chunked = ["--chunk-size", "131072"];
    let mut args = vec!["push", "-q", "--retries", "0", "busybox", &dest3];
    args.extend(chunked);
    let (ok, _, _) = cli(&a, &args);
    assert!(!ok, "push through a cut connection succeeded");
    let mut args = vec!["push", "-q", "busybox", &dest3];
    args.extend(chunked);
    let p3 = cli_ok(&a, &args);
    let total = a.json(&["inspect", "busybox"])["size"].as_u64().unwrap();
    let sent = p3["bytes_uploaded"].as_u64().unwrap();
    assert!(
        sent + 300_000 < total,
        "resumed push sent {sent} of {total} bytes"
    );
    assert_eq!(p3["digest"], p["digest"]);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/cut/resumed:1", reg.addr()),
        &format!("oci:{}:r", a.path("rcopy").display()),
    ]);

    // chunked with retries: the broken chunk is resumed in the same run from the registry's
    // upload status
    let proxy2 = CutProxy::start(reg.port, 400_000);
    let dest2 = format!("{}/cut/chunked:1", proxy2.addr());
    let p2 = cli_ok(
        &a,
        &["push", "-q", "busybox", &dest2, "--chunk-size", "131072"],
    );
    assert!(proxy2.cut_done.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(p2["digest"], p["digest"]);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/cut/chunked:1", reg.addr()),
        &format!("oci:{}:c", a.path("ccopy").display()),
    ]);
}

fn layer_record(s: &Store, content: &[u8]) -> CacheRecord {
    let tar = tar_of(&[("file", content)]);
    let b = s.put_blob_bytes(&tar).unwrap();
    let d = Descriptor::new(MEDIA_TYPE_LAYER_TAR, b.digest.clone(), b.size);
    let (gz, _) = recompress_layer(s, &d, &b.digest, LayerCompression::Gzip).unwrap();
    CacheRecord::with_layer(gz, b.digest)
}

#[test]
fn remote_cache_moves_between_two_stores() {
    let reg = Registry::start(false);
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let a = Store::open(da.path()).unwrap();
    let b = Store::open(db.path()).unwrap();
    let r1 = layer_record(&a, b"one");
    let r2 = layer_record(&a, &vec![7u8; 300_000]);
    let empty = CacheRecord::empty();
    let records = vec![
        ("key-1".to_string(), r1.clone()),
        ("key-2".to_string(), r2.clone()),
        ("key-3".to_string(), empty.clone()),
        ("key-4".to_string(), r1.clone()),
    ];
    let cache_ref = Reference::parse(&format!("{}/cache/app:buildcache", reg.addr())).unwrap();
    let missing = import_cache(&b, &cache_ref, &opts()).unwrap_err();
    assert!(
        matches!(missing, RegistryError::NotFound { .. }),
        "{missing}"
    );
    let e = export_cache(&a, &records, &cache_ref, &opts()).unwrap();
    assert_eq!((e.records, e.layers, e.blobs_uploaded), (4, 2, 3));
    let i = import_cache(&b, &cache_ref, &opts()).unwrap();
    assert_eq!((i.records, i.blobs_downloaded), (4, 3));
    assert_eq!(i.digest, e.digest);
    assert_eq!(b.cache_get("key-1").unwrap(), Some(r1.clone()));
    assert_eq!(b.cache_get("key-2").unwrap(), Some(r2));
    assert_eq!(b.cache_get("key-3").unwrap(), Some(empty));
    assert_eq!(b.cache_get("key-4").unwrap(), Some(r1));
    assert_eq!(b.cache_get("key-5").unwrap(), None);
    let again = import_cache(&b, &cache_ref, &opts()).unwrap();
    assert_eq!(again.blobs_downloaded, 0);
    // an image is not a cache
    let s = TestStore::new();
    import_busybox(&s);
    cli_ok(
        &s,
        &[
            "push",
            "-q",
            "busybox",
            &format!("{}/cache/img:1", reg.addr()),
        ],
    );
    let not_cache = Reference::parse(&format!("{}/cache/img:1", reg.addr())).unwrap();
    let err = import_cache(&b, &not_cache, &opts()).unwrap_err();
    assert!(
        matches!(err, RegistryError::UnsupportedMediaType { .. }),
        "{err}"
    );
}

// ---- the tiny server: tokens, broken answers, platform selection ----

/// A one-layer image (uncompressed layer) for `platform`; returns (manifest bytes, blobs).
fn image(content: &[u8], platform: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let tar = tar_of(&[("f", content)]);
    let diff_id = Digest::of(&tar);
    let (os, arch) = platform.split_once('/').unwrap();
    let config = json!({"architecture": arch, "os": os,
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}});
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": MEDIA_TYPE_LAYER_TAR, "digest": diff_id.to_string(), "size": tar.len()}]});
    (serde_json::to_vec(&manifest).unwrap(), vec![config, tar])
}

fn add_image(
    c: &mut Content,
    repo: &str,
    tag: Option<&str>,
    content: &[u8],
    platform: &str,
) -> (String, usize) {
    let (m, blobs) = image(content, platform);
    for b in &blobs {
        c.blob(b);
    }
    (c.manifest(repo, tag, MEDIA_TYPE_MANIFEST, &m), m.len())
}

fn fake_ref(srv: &FakeServer, repo_tag: &str) -> Reference {
    Reference::parse(&format!("{}/{repo_tag}", srv.addr())).unwrap()
}

#[test]
fn bearer_token_flow_anonymous_and_with_credentials() {
    let mut c = Content::default();
    add_image(&mut c, "tok/app", Some("1"), b"hello", "linux/amd64");
    let realm_cell: std::sync::Arc<std::sync::OnceLock<String>> = std::sync::Arc::default();
    let basic = format!(
        "Basic {}",
        base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
    );
    let srv = FakeServer::start({
        let realm_cell = realm_cell.clone();
        move |req| {
            let realm = realm_cell.get().cloned().unwrap_or_default();
            let path = req.path.split('?').next().unwrap_or("");
            if path == "/token" && req.method == "POST" {
                // OAuth2 refresh-token grant (identity tokens)
                let form = String::from_utf8_lossy(&req.body).to_string();
                if form.contains("grant_type=refresh_token")
                    && form.contains("refresh_token=ident-tok")
                    && form.contains("service=fake-registry")
                {
                    let scope = form.split("scope=").nth(1).unwrap_or("none").to_string();
                    return Response::new(200, format!(r#"{{"access_token":"T-{scope}"}}"#));
                }
                return Response::new(401, "{}");
            }
            if path == "/token" {
                // private/* needs the right basic credentials; wrong ones never pass
                let auth = req.header("authorization");
                if (req.path.contains("private") || auth.is_some()) && auth != Some(basic.as_str())
                {
                    return Response::new(401, "{}");
                }
                let scope = req
                    .path
                    .split("scope=")
                    .nth(1)
                    .unwrap_or("none")
                    .to_string();
                return Response::new(200, format!(r#"{{"token":"T-{scope}","expires_in":300}}"#));
            }
            let ok = req.header("authorization").is_some_and(|a| {
                a.starts_with("Bearer T-") && (path == "/v2/" || a.contains("pull"))
            });
            if !ok {
                return Response::new(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#).header(
                    "www-authenticate",
                    &format!(r#"Bearer realm="{realm}",service="fake-registry""#),
                );
            }
            let mut c = c.clone();
            // the same content under private/app
            for (k, v) in c.manifests.clone() {
                c.manifests.insert(k.replace("tok/app", "private/app"), v);
            }
            c.serve(req)
        }
    });
    realm_cell
        .set(format!("http://{}/token", srv.addr()))
        .unwrap();
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let r = pull(&s, &fake_ref(&srv, "tok/app:1"), &opts()).unwrap();
    assert_eq!(r.layers, 1);
    let token_reqs: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert!(!token_reqs.is_empty());
    assert!(token_reqs[0].path.contains("service=fake-registry"));
    assert!(
        token_reqs[0]
            .path
            .contains("scope=repository%3Atok%2Fapp%3Apull")
    );
    assert!(
        token_reqs
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "anonymous"
    );
    // credentials are sent to the token server, never to the registry
    let err = pull(&s, &fake_ref(&srv, "private/app:1"), &opts()).unwrap_err();
    assert!(matches!(err, RegistryError::Auth { .. }), "{err}");
    let mut o = opts();
    o.credentials
        .explicit
        .push((srv.addr(), Credential::new(USER, PASSWORD)));
    let before = srv.requests().len();
    pull(&s, &fake_ref(&srv, "private/app:1"), &o).unwrap();
    for r in &srv.requests()[before..] {
        if !r.path.starts_with("/token") {
            assert!(
                !r.header("authorization")
                    .unwrap_or_default()
                    .starts_with("Basic"),
                "{r:?}"
            );
        }
    }
    // login checks the credentials with the token server before storing them
    let cfg = tempfile::tempdir().unwrap();
    let mut lo = opts();
    lo.credentials.config_dir = Some(cfg.path().to_path_buf());
    let err = login(&srv.addr(), &Credential::new(USER, "nope"), &lo).unwrap_err();
    assert!(matches!(err, RegistryError::Auth { .. }), "{err}");
    assert!(!cfg.path().join("config.json").exists());
    login(&srv.addr(), &Credential::new(USER, PASSWORD), &lo).unwrap();
    assert_eq!(
        lo.credentials.lookup(&srv.addr()).unwrap(),
        Some(Credential::new(USER, PASSWORD))
    );
    let d4 = tempfile::tempdir().unwrap();
    let s4 = Store::open(d4.path()).unwrap();
    pull(&s4, &fake_ref(&srv, "private/app:1"), &lo).unwrap();
    // an identity token goes through the refresh-token POST
    let mut ident = opts();
    ident
        .credentials
        .explicit
        .push((srv.addr(), Credential::new("<token>", "ident-tok")));
    let d3 = tempfile::tempdir().unwrap();
    let s3 = Store::open(d3.path()).unwrap();
    pull(&s3, &fake_ref(&srv, "tok/app:1"), &ident).unwrap();
    assert!(
        srv.requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/token")
    );
    let mut bad = opts();
    bad.credentials
        .explicit
        .push((srv.addr(), Credential::new(USER, "nope")));
    let d2 = tempfile::tempdir().unwrap();
    let s2 = Store::open(d2.path()).unwrap();
    let err = pull(&s2, &fake_ref(&srv, "private/app:1"), &bad).unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(!err.to_string().contains("nope"));
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for ch in b.chunks(3) {
        let n = (u32::from(ch[0]) << 16)
            | (u32::from(*ch.get(1).unwrap_or(&0)) << 8)
            | u32::from(*ch.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= ch.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn wrong_digest_and_truncated_bodies_leave_nothing() {
    let mut c = Content::default();
    let payload = vec![42u8; 200_000];
    add_image(&mut c, "bad/app", Some("1"), &payload, "linux/amd64");
    let (m, blobs) = image(&payload, "linux/amd64");
    let layer_digest = Digest::of(&blobs[1]).to_string();
    let _ = m;
    // wrong content for the layer
    let mut wrong = c.clone();
    let mut corrupted = blobs[1].clone();
    corrupted[1000] ^= 1;
    wrong.blobs.insert(layer_digest.clone(), corrupted);
    let srv = FakeServer::start(move |req| wrong.serve(req));
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let err = pull(&s, &fake_ref(&srv, "bad/app:1"), &opts()).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(!s.has_blob(&Digest::parse(&layer_digest).unwrap()));
    assert!(s.list_tags().unwrap().is_empty());
    assert!(tmp_empty(d.path()));
    // truncated every time: refused after the retries
    let cc = c.clone();
    let ld = layer_digest.clone();
    let srv = FakeServer::start(move |req| {
        let mut r = cc.serve(req);
        if req.path.ends_with(&ld) {
            r.truncate = Some(r.body.len() / 2);
        }
        r
    });
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let err = pull(&s, &fake_ref(&srv, "bad/app:1"), &opts()).unwrap_err();
    assert!(
        err.to_string().contains("download broken") || err.to_string().contains("size"),
        "{err}"
    );
    assert!(!s.has_blob(&Digest::parse(&layer_digest).unwrap()));
    assert!(s.list_tags().unwrap().is_empty());
    assert!(tmp_empty(d.path()));
    // a short body without error (Content-Length matching the short body)
    let mut short = c.clone();
    short
        .blobs
        .insert(layer_digest.clone(), blobs[1][..1000].to_vec());
    let srv = FakeServer::start(move |req| short.serve(req));
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let err = pull(&s, &fake_ref(&srv, "bad/app:1"), &opts()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(tmp_empty(d.path()));
    // a manifest that does not match the digest asked for
    let mut c2 = c.clone();
    let other = Digest::of(b"not the manifest");
    let (mt, bytes) = c2.manifests.get("bad/app@1").unwrap().clone();
    c2.manifests.insert(format!("bad/app@{other}"), (mt, bytes));
    let srv = FakeServer::start(move |req| c2.serve(req));
    let err = pull(&s, &fake_ref(&srv, &format!("bad/app@{other}")), &opts()).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert_eq!(
        blob_count(d.path()),
        1,
        "only the verified config of the earlier attempt"
    );
}

#[test]
fn broken_download_resumes_with_range_and_5xx_is_retried() {
    let mut c = Content::default();
    let payload: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mdigest, _) = add_image(&mut c, "flaky/app", Some("1"), &payload, "linux/amd64");
    let (_, blobs) = image(&payload, "linux/amd64");
    let layer_digest = Digest::of(&blobs[1]).to_string();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cl = calls.clone();
    let ld = layer_digest.clone();
    let srv = FakeServer::start(move |req| {
        let n = cl.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // the first two answers are 503 and 429
        if n == 0 {
            return Response::new(503, "busy");
        }
        if n == 1 {
            return Response::new(429, "slow down").header("retry-after", "0");
        }
        let mut r = c.serve(req);
        if req.path.ends_with(&ld) && req.header("range").is_none() {
            r.truncate = Some(150_000);
        }
        r
    });
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let r = pull(&s, &fake_ref(&srv, "flaky/app:1"), &opts()).unwrap();
    assert_eq!(r.manifest_digest.to_string(), mdigest);
    assert_eq!(r.bytes_downloaded as usize, blobs[0].len() + blobs[1].len());
    let ranges: Vec<String> = srv
        .requests()
        .iter()
        .filter_map(|q| q.header("range").map(str::to_string))
        .collect();
    assert_eq!(ranges, vec!["bytes=150000-".to_string()]);
    s.verify_blob(&Digest::parse(&layer_digest).unwrap(), None)
        .unwrap();
    // a registry that ignores Range: the download starts again and still verifies
    let mut c2 = Content::default();
    add_image(&mut c2, "norange/app", Some("1"), &payload, "linux/amd64");
    let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let srv2 = FakeServer::start(move |req| {
        let mut q = req.clone();
        q.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
        let mut r = c2.serve(&q);
        if q.path.contains("/blobs/")
            && r.body.len() > 100_000
            && first.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            r.truncate = Some(10_000);
        }
        r
    });
    let d2 = tempfile::tempdir().unwrap();
    let s2 = Store::open(d2.path()).unwrap();
    pull(&s2, &fake_ref(&srv2, "norange/app:1"), &opts()).unwrap();
}

#[test]
fn platform_selection_nested_index_attestations_foreign_layers() {
    let mut c = Content::default();
    let (amd, amd_size) = add_image(&mut c, "multi/app", None, b"amd64", "linux/amd64");
    let (arm, arm_size) = add_image(&mut c, "multi/app", None, b"arm64", "linux/arm64");
    let (att, att_size) = add_image(&mut c, "multi/app", None, b"sbom", "unknown/unknown");
    // buildx style: an index whose image entries sit in a nested index, plus attestations
    let inner = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [
        {"mediaType": MEDIA_TYPE_MANIFEST, "digest": att, "size": att_size,
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
         "platform": {"os": "unknown", "architecture": "unknown"}},
        {"mediaType": MEDIA_TYPE_MANIFEST, "digest": amd, "size": amd_size,
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": MEDIA_TYPE_MANIFEST, "digest": arm, "size": arm_size,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]});
    let inner = serde_json::to_vec(&inner).unwrap();
    let inner_d = c.manifest("multi/app", None, MEDIA_TYPE_INDEX, &inner);
    let outer = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [
        {"mediaType": MEDIA_TYPE_INDEX, "digest": inner_d, "size": inner.len()}]});
    let outer_d = c.manifest(
        "multi/app",
        Some("1"),
        MEDIA_TYPE_INDEX,
        &serde_json::to_vec(&outer).unwrap(),
    );
    // a Docker manifest list of the same images
    let list = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_DOCKER_LIST, "manifests": [
        {"mediaType": MEDIA_TYPE_MANIFEST, "digest": arm, "size": arm_size,
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": MEDIA_TYPE_MANIFEST, "digest": amd, "size": amd_size,
         "platform": {"os": "linux", "architecture": "amd64"}}]});
    c.manifest(
        "multi/app",
        Some("list"),
        MEDIA_TYPE_DOCKER_LIST,
        &serde_json::to_vec(&list).unwrap(),
    );
    // a manifest with a foreign layer
    let foreign = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": Digest::of(b"c").to_string(), "size": 1},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                    "digest": Digest::of(b"w").to_string(), "size": 1, "urls": ["https://example.invalid/l"]}]});
    c.manifest(
        "multi/app",
        Some("foreign"),
        MEDIA_TYPE_DOCKER_MANIFEST,
        &serde_json::to_vec(&foreign).unwrap(),
    );
    add_image(
        &mut c,
        "multi/app",
        Some("single"),
        b"single",
        "linux/arm64",
    );
    let srv = FakeServer::start(move |req| c.serve(req));
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let with = |p: &str| RegistryOptions {
        platform: Some(image_store::Platform::parse(p).unwrap()),
        ..opts()
    };
    let r = pull(&s, &fake_ref(&srv, "multi/app:1"), &with("linux/amd64")).unwrap();
    assert_eq!(r.manifest_digest.to_string(), amd);
    assert_eq!(r.resolved_digest.to_string(), outer_d);
    assert_eq!(r.platform, "linux/amd64");
    let r = pull(&s, &fake_ref(&srv, "multi/app:1"), &with("linux/arm64")).unwrap();
    assert_eq!(r.manifest_digest.to_string(), arm);
    // by the index's digest: the platform's image, findable by that digest reference
    let by_index = fake_ref(&srv, &format!("multi/app@{outer_d}"));
    let r = pull(&s, &by_index, &with("linux/amd64")).unwrap();
    assert_eq!(r.manifest_digest.to_string(), amd);
    assert!(!r.tagged);
    let img = s.resolve(&by_index).unwrap().unwrap();
    assert_eq!(img.manifest_digest().to_string(), amd);
    let r = pull(
        &s,
        &fake_ref(&srv, "multi/app:list"),
        &with("linux/arm64/v8"),
    )
    .unwrap();
    assert_eq!(r.manifest_digest.to_string(), arm);
    let err = pull(&s, &fake_ref(&srv, "multi/app:1"), &with("linux/s390x")).unwrap_err();
    let msg = err.to_string();
    assert!(err.is_input_error());
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/amd64, linux/arm64/v8"),
        "{msg}"
    );
    assert!(!msg.contains("unknown"), "attestations listed: {msg}");
    // a single-platform image: taken as is without --platform, checked with it
    let r = pull(&s, &fake_ref(&srv, "multi/app:single"), &opts()).unwrap();
    assert_eq!(r.platform, "linux/arm64");
    pull(
        &s,
        &fake_ref(&srv, "multi/app:single"),
        &with("linux/arm64"),
    )
    .unwrap();
    let err = pull(
        &s,
        &fake_ref(&srv, "multi/app:single"),
        &with("linux/amd64"),
    )
    .unwrap_err();
    assert!(matches!(err, RegistryError::NoPlatform { .. }), "{err}");
    let err = pull(&s, &fake_ref(&srv, "multi/app:foreign"), &opts()).unwrap_err();
    assert!(matches!(err, RegistryError::ForeignLayer { .. }), "{err}");
    // nothing was downloaded for the foreign image: no request for its blobs
    assert!(
        !srv.requests()
            .iter()
            .any(|q| q.path.contains(Digest::of(b"w").as_str()))
    );
    // the CLI: exit 2 with one error line
    let t = TestStore::new();
    let (ok, _, err) = cli(
        &t,
        &[
            "pull",
            "-q",
            "--platform",
            "linux/s390x",
            &format!("{}/multi/app:1", srv.addr()),
        ],
    );
    assert!(!ok);
    assert!(
        err.starts_with("image-store: error: ") && err.lines().count() == 1,
        "{err}"
    );
    let o = t
        .cmd(&[
            "pull",
            "-q",
            "--platform",
            "linux/s390x",
            &format!("{}/multi/app:1", srv.addr()),
        ])
        .env("DOCKER_CONFIG", t.path("docker-config"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn missing_image_and_unreachable_registry_fail_with_exit_1() {
    let reg = Registry::start(false);
    let t = TestStore::new();
    let o = t
        .cmd(&["pull", "-q", &format!("{}/nope/nothing:1", reg.addr())])
        .env("DOCKER_CONFIG", t.path("docker-config"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not found"), "{err}");
    let port = harness::free_port();
    let o = t
        .cmd(&[
            "pull",
            "-q",
            "--retries",
            "1",
            &format!("127.0.0.1:{port}/x:1"),
        ])
        .env("DOCKER_CONFIG", t.path("docker-config"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

/// The first non-loopback IPv4 address of this machine (`hostname -I`).
fn local_address() -> String {
    let o = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("this test needs a non-loopback IPv4 address on this machine")
        .to_string()
}

#[test]
fn plain_http_only_for_loopback_or_insecure_registries() {
    let mut c = Content::default();
    add_image(&mut c, "plain/app", Some("1"), b"x", "linux/amd64");
    let srv = FakeServer::start_on(&local_address(), move |req| c.serve(req));
    let t = TestStore::new();
    let r = format!("{}/plain/app:1", srv.addr());
    // a private address is not insecure by default: TLS only, never a plain HTTP request
    let (ok, _, err) = cli(&t, &["pull", "-q", "--retries", "0", &r]);
    assert!(!ok, "pulled over plain HTTP from a private address");
    assert!(err.contains("https://"), "{err}");
    assert!(
        srv.requests().is_empty(),
        "plain HTTP was used: {:?}",
        srv.requests()
    );
    // listed as insecure: https is tried, then plain HTTP
    let v = cli_ok(&t, &["pull", "-q", "--insecure-registry", &srv.addr(), &r]);
    assert_eq!(v["layers"], 1);
    assert!(!srv.requests().is_empty());
}

#[test]
fn https_registry_with_a_self_signed_certificate() {
    // loopback is insecure by default (as Docker): HTTPS without verification
    let reg = TlsRegistry::start("127.0.0.1");
    let a = TestStore::new();
    let imp = import_busybox(&a);
    let dest = format!("{}/tls/busybox:1", reg.addr);
    let p = cli_ok(&a, &["push", "-q", "busybox", &dest]);
    assert_eq!(p["digest"], imp["manifest_digest"]);
    // the registry speaks only TLS: skopeo reads what we pushed over HTTPS
    let v = skopeo_json(&["inspect", "--tls-verify=false", &format!("docker://{dest}")]);
    assert_eq!(v["Digest"], imp["manifest_digest"]);
    let b = TestStore::new();
    let r = cli_ok(&b, &["pull", "-q", &dest]);
    assert_eq!(r["image_id"], imp["image_id"]);
    b.fsck_clean();
    // on another address of this machine the certificate is verified: refused, until the
    // registry is listed as insecure
    let reg = TlsRegistry::start(&local_address());
    let dest = format!("{}/tls/busybox:1", reg.addr);
    let (ok, _, err) = cli(&a, &["push", "-q", "--retries", "0", "busybox", &dest]);
    assert!(!ok, "pushed to an unverified TLS registry");
    assert!(err.contains(&reg.addr) && err.lines().count() == 1, "{err}");
    assert!(
        err.contains("certificate") && err.contains("--insecure-registry"),
        "{err}"
    );
    let p = cli_ok(
        &a,
        &[
            "push",
            "-q",
            "--insecure-registry",
            &reg.addr,
            "busybox",
            &dest,
        ],
    );
    assert_eq!(p["digest"], imp["manifest_digest"]);
    let c = TestStore::new();
    let (ok, _, _) = cli(&c, &["pull", "-q", "--retries", "0", &dest]);
    assert!(!ok);
    let r = cli_ok(&c, &["pull", "-q", "--insecure-registry", &reg.addr, &dest]);
    assert_eq!(r["image_id"], imp["image_id"]);
}

#[test]
fn credential_helper_on_path_serves_login_push_and_logout() {
    use std::os::unix::fs::PermissionsExt;
    let reg = Registry::start(true);
    let a = TestStore::new();
    import_busybox(&a);
    // a docker-credential-* helper on PATH keeping one file per server URL
    let bin_dir = a.path("helpers");
    let db = a.path("helper-db");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let helper = format!(
        "#!/bin/sh\nset -e\nkey() {{ printf %s \"$1\" | base64 -w0 | tr / _; }}\ncase \"$1\" in\n\
         get) url=$(cat); f={db}/$(key \"$url\"); [ -f \"$f\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}; cat \"$f\";;\n\
         store) in=$(cat); url=$(printf %s \"$in\" | sed 's/.*\"ServerURL\":\"\\([^\"]*\\)\".*/\\1/'); printf %s \"$in\" > {db}/$(key \"$url\");;\n\
         erase) url=$(cat); rm {db}/$(key \"$url\");;\n\
         esac\n",
        db = db.display()
    );
    let hp = bin_dir.join("docker-credential-testhelper");
    std::fs::write(&hp, helper).unwrap();
    std::fs::set_permissions(&hp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(a.path("docker-config")).unwrap();
    std::fs::write(
        a.path("docker-config/config.json"),
        r#"{"credsStore":"testhelper"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str], stdin: &[u8]| {
        use std::io::Write;
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let mut child = a
            .cmd(&full)
            .env("DOCKER_CONFIG", a.path("docker-config"))
            .env("PATH", &path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let o = child.wait_with_output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, err) = run(
        &["login", &reg.addr(), "-u", USER, "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(ok, "{err}");
    // the secret is in the helper's store, not in config.json
    let cfg = std::fs::read_to_string(a.path("docker-config/config.json")).unwrap();
    assert!(
        !cfg.contains(PASSWORD) && !cfg.contains("auth\":\""),
        "{cfg}"
    );
    assert_eq!(std::fs::read_dir(&db).unwrap().count(), 1);
    let dest = format!("{}/helper/bb:1", reg.addr());
    let (ok, err) = run(&["push", "-q", "busybox", &dest], b"");
    assert!(ok, "{err}");
    let (ok, err) = run(&["logout", &reg.addr()], b"");
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_dir(&db).unwrap().count(), 0);
    let (ok, err) = run(&["push", "-q", "busybox", &dest], b"");
    assert!(!ok, "push after logout succeeded");
    assert!(err.contains("log in"), "{err}");
}

#[test]
fn refused_mount_scope_falls_back_to_upload() {
    let mut c = Content::default();
    add_image(&mut c, "secret/src", Some("1"), b"mount me", "linux/amd64");
    let srv = FakeServer::start(move |req| {
        let path = req.path.split('?').next().unwrap_or("");
        if path == "/token" {
            // no token for a mount's two scopes (no read access to the source)
            if req.path.matches("scope=").count() > 1 {
                return Response::new(401, "{}");
            }
            return Response::new(200, r#"{"token":"T"}"#);
        }
        if req.header("authorization") != Some("Bearer T") {
            let realm = format!("http://{}/token", req.header("host").unwrap_or_default());
            return Response::new(401, "{}").header(
                "www-authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake""#),
            );
        }
        if path.starts_with("/v2/dst/") {
            return match (req.method.as_str(), path) {
                ("HEAD", _) => Response::new(404, ""),
                ("POST", "/v2/dst/app/blobs/uploads/") if !req.path.contains("mount=") => {
                    Response::new(202, "").header("location", "/upload/1?_state=x")
                }
                ("PUT", _) => Response::new(201, ""),
                _ => Response::new(400, "unexpected"),
            };
        }
        if path.starts_with("/upload/") && req.method == "PUT" {
            return Response::new(201, "");
        }
        c.serve(req)
    });
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    pull(&s, &fake_ref(&srv, "secret/src:1"), &opts()).unwrap();
    let img = s.image(&fake_ref(&srv, "secret/src:1")).unwrap();
    let r = image_store::registry::push(
        &s,
        &img,
        &fake_ref(&srv, "dst/app:1"),
        &image_store::registry::PushOptions::default(),
        &opts(),
    )
    .unwrap();
    assert_eq!((r.blobs_uploaded, r.blobs_mounted), (2, 0));
    let log = srv.requests();
    assert!(
        log.iter()
            .any(|q| q.path.starts_with("/token") && q.path.contains("secret%2Fsrc")),
        "no mount was tried"
    );
    assert!(
        !log.iter()
            .any(|q| q.path.contains("mount=") && q.header("authorization").is_some())
    );
}
