//! Robustness: a build SIGKILLed at any moment, and a build on a full file system, leave a store
//! that passes `fsck`, and the next build works (and gives the image an uninterrupted build
//! gives).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{BIN, Env, base_tar};

/// Incompressible bytes (xorshift), so packing and compressing them takes real time and space.
fn noise(len: usize, mut x: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn fsck_clean(e: &Env, when: &str) {
    let r = e.store().fsck(false).unwrap();
    assert!(r.ok && r.problems.is_empty(), "{when}: fsck found {r:#?}");
}

/// A build in the background; the last progress line it printed is kept.
struct Running {
    child: Child,
    last: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn spawn_build(e: &Env, args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .arg("--store")
        .arg(&e.store)
        .args(["--progress", "plain"])
        .args(args)
        .arg(&e.ctx)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let last = Arc::new(Mutex::new(String::new()));
    let l = Arc::clone(&last);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            *l.lock().unwrap() = line;
        }
    });
    Running {
        child,
        last,
        reader,
    }
}

const EPOCH: &str = "1700000000";

/// A COPY of 24 MiB, a RUN that sleeps then writes 48 MiB (packed and gzipped after it), a
/// config step.
fn kill_fixture(e: &Env) {
    std::fs::write(
        e.ctx.join("big.bin"),
        noise(24 << 20, 0x2545_f491_4f6c_dd1d),
    )
    .unwrap();
    e.remfile(
        "FROM busybox:local\nCOPY big.bin /big.bin\n\
         RUN sleep 1 && cat /big.bin /big.bin > /twice && echo done > /done\nENV X=1\n",
    );
}

fn ids(v: &serde_json::Value) -> (String, String) {
    (
        v["image_id"].as_str().unwrap().to_string(),
        v["manifest_digest"].as_str().unwrap().to_string(),
    )
}

#[test]
#[ignore = "needs root: RUN steps use namespaces and overlayfs"]
fn sigkill_at_any_point_leaves_a_consistent_store_and_the_rebuild_matches() {
    let killed_env = Env::new();
    let reference = Env::new_like(&killed_env);
    for e in [&killed_env, &reference] {
        kill_fixture(e);
    }
    let args = ["--source-date-epoch", EPOCH, "-t", "k:1"];
    let t0 = Instant::now();
    let (want, _) = reference.build_ok(&args);
    let total = t0.elapsed();
    // spread the kills over the whole build: COPY, RUN, packing and compressing its layer,
    // writing the image; the first ones land while the base is being prepared
    let mut delays: Vec<Duration> = vec![Duration::from_millis(30), Duration::from_millis(150)];
    delays.extend((1..10).map(|k| total * k / 10));
    let mut killed = Vec::new();
    for d in &delays {
        let mut b = spawn_build(&killed_env, &["--no-cache", "--source-date-epoch", EPOCH]);
        std::thread::sleep(*d);
        if b.child.try_wait().unwrap().is_none() {
            b.child.kill().unwrap();
            b.child.wait().unwrap();
            b.reader.join().unwrap();
            killed.push(format!("{d:?}: {}", b.last.lock().unwrap()));
        } else {
            b.child.wait().unwrap();
            b.reader.join().unwrap();
        }
        fsck_clean(&killed_env, &format!("after a kill at {d:?}"));
    }
    eprintln!("killed during:\n  {}", killed.join("\n  "));
    assert!(
        killed.len() >= 6,
        "only {} of {} builds killed: {killed:?}",
        killed.len(),
        delays.len()
    );
    // the next build (using whatever cache the killed ones left) gives the same image
    let (got, _) = killed_env.build_ok(&args);
    assert_eq!(ids(&got), ids(&want));
    fsck_clean(&killed_env, "after the rebuild");
    let (again, _) = killed_env.build_ok(&["--no-cache", "--source-date-epoch", EPOCH]);
    assert_eq!(ids(&again), ids(&want));
    // gc removes what the killed builds left behind, and the image stays intact
    let s = killed_env.store();
    s.gc(false).unwrap();
    fsck_clean(&killed_env, "after gc");
    let r = killed_env.rootfs("k:1");
    assert_eq!(
        std::fs::read_to_string(r.path().join("done")).unwrap(),
        "done\n"
    );
}

/// A tmpfs mount, lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.0).unwrap();
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An environment whose store lies on `mnt` (busybox imported as `busybox:local`).
fn env_on(mnt: &Path) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let store = mnt.join("store");
    let s = image_store::Store::open(&store).unwrap();
    let opts = image_store::ImportOptions {
        reference: Some(image_store::Reference::parse("busybox:local").unwrap()),
        changes: vec!["CMD [\"sh\"]".into()],
        ..Default::default()
    };
    s.import_tar(std::fs::File::open(base_tar()).unwrap(), &opts)
        .unwrap();
    Env { dir, store, ctx }
}

/// A quiet build that must fail because the disk is full: one error line naming the step and the
/// cause, exit 1, a store that passes fsck, no temp files left, the space given back.
fn fails_full(e: &Env, fs: &Tmpfs, step: &str, free_before: u64) {
    let o = Command::new(BIN)
        .arg("--store")
        .arg(&e.store)
        .args(["-q", "-t", "full"])
        .arg(&e.ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    eprint!("{step} on a full file system: {err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(
        err.starts_with("pelagos-build: error: ")
            && err.contains(step)
            && err.to_lowercase().contains("no space left on device"),
        "{err}"
    );
    fsck_clean(e, &format!("after the failed {step}"));
    let tmp: Vec<_> = std::fs::read_dir(e.store.join("tmp"))
        .map(|d| d.flatten().map(|x| x.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temp files left after {step}: {tmp:?}");
    let free = fs.free();
    assert!(
        free + (1 << 20) >= free_before,
        "{step} leaked {} KiB on the full file system",
        (free_before - free) >> 10
    );
    assert!(
        e.store()
            .resolve(&image_store::Reference::parse("full").unwrap())
            .unwrap()
            .is_none(),
        "a failed build tagged its image"
    );
}

#[test]
#[ignore = "needs root: mounts a small tmpfs as the store and runs RUN steps"]
fn full_file_system_fails_with_one_line_and_leaves_the_store_usable() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("small"), "24m");
    let e = env_on(&fs.0);
    // a first build prepares the base's snapshot, so later failures start from the same state
    e.remfile("FROM busybox:local\nRUN echo ok > /ok\n");
    let o = Command::new(BIN)
        .arg("--store")
        .arg(&e.store)
        .args(["-q", "-t", "small"])
        .arg(&e.ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let free_before = fs.free();
    assert!(free_before > 8 << 20, "only {free_before} bytes free");

    // COPY of a file larger than the file system
    std::fs::write(e.ctx.join("big.bin"), noise(32 << 20, 7)).unwrap();
    e.remfile("FROM busybox:local\nCOPY big.bin /big.bin\n");
    fails_full(&e, &fs, "COPY big.bin", free_before);
    std::fs::remove_file(e.ctx.join("big.bin")).unwrap();

    // RUN output that fits in the upper dir, but not twice (its layer blob does not fit)
    let mib = (free_before >> 20) * 6 / 10;
    e.remfile(&format!(
        "FROM busybox:local\nRUN dd if=/dev/urandom of=/big bs=1048576 count={mib}\n"
    ));
    fails_full(&e, &fs, "RUN dd", free_before);

    // the store still builds
    e.remfile("FROM busybox:local\nRUN echo after > /after\n");
    let (v, _) = e.build_ok(&["-t", "after"]);
    assert!(v["image_id"].as_str().unwrap().starts_with("sha256:"));
    fsck_clean(&e, "after the builds");
}
