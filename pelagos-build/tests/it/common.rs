//! Helpers: temp stores with the busybox base imported, running the binary, reading images.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_pelagos-build");

/// The busybox rootfs tar: `$PELAGOS_TEST_BASE_TAR`, else made once with scripts/make-base.
pub fn base_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        if let Ok(p) = std::env::var("PELAGOS_TEST_BASE_TAR")
            && Path::new(&p).is_file()
        {
            return PathBuf::from(p);
        }
        let out = std::env::temp_dir().join(format!(
            "pelagos-build-test-base-{}.tar",
            std::process::id()
        ));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-base");
        let st = Command::new(script)
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/make-base");
        assert!(st.success(), "scripts/make-base failed");
        out
    })
    .clone()
}

/// A temp dir with a store (busybox imported as `busybox:local`) and a context dir.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub ctx: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        let s = image_store::Store::open(&store).unwrap();
        let f = std::fs::File::open(base_tar()).unwrap();
        let opts = image_store::ImportOptions {
            reference: Some(image_store::Reference::parse("busybox:local").unwrap()),
            changes: vec!["CMD [\"sh\"]".into()],
            ..Default::default()
        };
        s.import_tar(f, &opts).unwrap();
        Env { dir, store, ctx }
    }

    /// An environment whose store holds the same base image as `other`'s (exported and loaded,
    /// so both stores are identical: for reproducibility tests).
    pub fn new_like(other: &Env) -> Env {
        let e = Env::empty();
        let src = other.store();
        let img = src
            .image(&image_store::Reference::parse("busybox:local").unwrap())
            .unwrap();
        let layout = e.dir.path().join("base-layout");
        src.export(
            &[img],
            image_store::ExportFormat::OciDir,
            Some(&layout),
            &mut std::io::sink(),
        )
        .unwrap();
        let s = e.store();
        let opts = image_store::LoadOptions {
            reference: Some(image_store::Reference::parse("busybox:local").unwrap()),
            ..Default::default()
        };
        s.load_path(&layout, &opts).unwrap();
        e
    }

    /// An environment without any image.
    pub fn empty() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        Env { dir, store, ctx }
    }

    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.ctx.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn remfile(&self, text: &str) {
        self.write("Remfile", text);
    }

    /// Runs the binary with `--store` and `--progress plain`, the context last.
    pub fn build(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.arg("--store")
            .arg(&self.store)
            .arg("--progress")
            .arg("plain")
            .args(args)
            .arg(&self.ctx);
        c.env_remove("SOURCE_DATE_EPOCH");
        c.output().unwrap()
    }

    /// A build that must succeed; returns the result document.
    pub fn build_ok(&self, args: &[&str]) -> (serde_json::Value, String) {
        let o = self.build(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "build failed: {err}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout not JSON ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            )
        });
        (v, err)
    }

    pub fn store(&self) -> image_store::Store {
        image_store::Store::open(&self.store).unwrap()
    }

    /// The image config of a built image (by reference or ID).
    pub fn config(&self, reference: &str) -> image_store::ImageConfig {
        self.image(reference).config
    }

    /// A tagged image.
    pub fn image(&self, reference: &str) -> image_store::ImageRecord {
        self.store()
            .image(&image_store::Reference::parse(reference).unwrap())
            .unwrap()
    }

    /// The flattened root file system of an image, unpacked into a fresh dir.
    pub fn rootfs(&self, spec: &str) -> tempfile::TempDir {
        let s = self.store();
        let img = s
            .image(&image_store::Reference::parse(spec).unwrap())
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        for (d, _) in img.layers().unwrap() {
            let opts = layer_pack::UnpackOptions {
                preserve_owners: is_root(),
                allow_devices: is_root(),
                ..Default::default()
            };
            layer_pack::unpack_path(&s.blob_path(&d.digest), out.path(), &opts).unwrap();
        }
        out
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions
    unsafe { libc::geteuid() == 0 }
}

/// (cached, total) of the non-FROM steps in the plain progress `err` of a build.
pub fn count_cached(err: &str) -> (usize, usize) {
    let mut from_ids = std::collections::HashSet::new();
    let (mut cached, mut total) = (0, 0);
    for l in err.lines() {
        let Some((id, rest)) = l.split_once(' ') else {
            continue;
        };
        if rest.contains("] FROM ") {
            from_ids.insert(id.to_string());
        } else if !from_ids.contains(id) && (rest == "CACHED" || rest.starts_with("DONE ")) {
            total += 1;
            cached += usize::from(rest == "CACHED");
        }
    }
    (cached, total)
}
