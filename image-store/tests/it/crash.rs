//! Crash safety (SIGKILL at random moments) and multi-process concurrency.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::{TestStore, tar_of};

/// xorshift64*: a small deterministic generator; the seed is printed for reproduction.
struct Rng(u64);

impl Rng {
    fn from_time() -> Rng {
        let seed = std::env::var("IS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("seed {seed} (IS_SEED to replay)");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn unique_tar(tag: &str, kb: usize) -> Vec<u8> {
    let body: Vec<u8> = tag.bytes().cycle().take(kb * 1024).collect();
    tar_of(&[
        ("data/", b""),
        ("data/file", &body),
        ("data/name", tag.as_bytes()),
    ])
}

#[test]
fn sigkill_at_random_moments_leaves_a_store_fsck_passes() {
    let s = TestStore::new();
    let mut rng = Rng::from_time();
    assert!(
        s.run_stdin(&["import", "-", "-t", "base"], &unique_tar("base", 64))
            .status
            .success()
    );
    // an OCI archive to load repeatedly
    let src = TestStore::new();
    assert!(
        src.run_stdin(&["import", "-", "-t", "src"], &unique_tar("src", 256))
            .status
            .success()
    );
    let archive = src.path("src.tar");
    src.ok(&["export", "src", "-o", archive.to_str().unwrap()]);
    let mut killed = 0;
    for i in 0..200u64 {
        let tag = format!("t{i}");
        let j = rng.below(i + 1);
        let input = unique_tar(&tag, 1 + rng.below(512) as usize);
        let args: Vec<String> = match rng.below(7) {
            0 | 1 => vec!["import".into(), "-".into(), "-t".into(), format!("imp:{i}")],
            2 => vec![
                "commit".into(),
                "--base".into(),
                "base".into(),
                "-t".into(),
                format!("com:{i}"),
                "-c".into(),
                format!("ENV I={i}"),
            ],
            3 => vec!["gc".into(), "--grace".into(), "0".into()],
            4 => vec![
                "load".into(),
                archive.to_str().unwrap().into(),
                "-t".into(),
                format!("ld:{i}"),
            ],
            5 => vec!["lowers".into(), "base".into()],
            _ => vec!["rm".into(), format!("imp:{j}")],
        };
        let mut child = s
            .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // feed stdin from a thread so a kill never blocks us
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
        std::thread::sleep(Duration::from_micros(rng.below(40_000)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let _ = feeder.join();
        if i % 25 == 24 {
            s.fsck_clean();
        }
    }
    eprintln!("{killed} of 200 processes killed mid-operation");
    assert!(
        killed > 50,
        "only {killed} kills: the loop does not exercise crashes"
    );
    // no repair needed beyond temp files
    let r = s.json(&["fsck", "--repair"]);
    assert!(r["problems"].as_array().unwrap().is_empty(), "{r:#}");
    let r = s.json(&["fsck"]);
    assert_eq!(r["stale_temp"], 0);
    // every surviving tag is usable
    for img in s.json(&["ls"])["images"].as_array().unwrap() {
        s.ok(&["inspect", img["reference"].as_str().unwrap()]);
    }
    s.ok(&["gc", "--grace", "0"]);
    s.fsck_clean();
}

#[test]
fn eight_processes_at_once_lose_no_tag_and_corrupt_no_blob() {
    let s = TestStore::new();
    assert!(
        s.run_stdin(&["import", "-", "-t", "base"], &unique_tar("base", 64))
            .status
            .success()
    );
    let root = s.root.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let root = root.clone();
            std::thread::spawn(move || {
                let s = TestStore::at(&root);
                let mut expected = BTreeSet::new();
                let mut k = 0;
                while Instant::now() < deadline {
                    let img = format!("w{w}/img:{k}");
                    let o = s.run_stdin(
                        &["import", "-", "-t", &img],
                        &unique_tar(&format!("{w}-{k}"), 32),
                    );
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                    expected.insert(format!("docker.io/{img}"));
                    // usable right away, whatever gc the others run
                    s.ok(&["inspect", &img]);
                    let alias = format!("w{w}/alias:{k}");
                    s.ok(&["tag", &img, &alias]);
                    expected.insert(format!("docker.io/{alias}"));
                    let c = format!("w{w}/c:{k}");
                    s.ok(&[
                        "commit",
                        "--base",
                        &img,
                        "-t",
                        &c,
                        "-c",
                        &format!("ENV K={k}"),
                    ]);
                    expected.insert(format!("docker.io/{c}"));
                    if k > 0 {
                        let old = format!("w{w}/alias:{}", k - 1);
                        s.ok(&["rm", &old]);
                        expected.remove(&format!("docker.io/{old}"));
                    }
                    if k % 3 == w % 3 {
                        s.ok(&["gc", "--grace", "0"]);
                    }
                    if k % 4 == 0 {
                        s.ok(&["lowers", &c]);
                    }
                    k += 1;
                }
                (expected, k)
            })
        })
        .collect();
    let mut expected = BTreeSet::from(["docker.io/library/base:latest".to_string()]);
    let mut rounds = 0;
    for w in workers {
        let (e, k) = w.join().unwrap();
        expected.extend(e);
        rounds += k;
    }
    eprintln!("{rounds} rounds by 8 processes");
    let got: BTreeSet<String> = s.json(&["ls"])["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
    s.fsck_clean();
    s.ok(&["gc", "--grace", "0"]);
    s.fsck_clean();
    for r in &expected {
        s.ok(&["lowers", r]);
    }
}
