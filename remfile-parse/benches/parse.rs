//! `cargo bench -p remfile-parse`: parse a generated Remfile of 100k
//! instructions (~10 MB) and print MB/s; then peak RSS for growing inputs to
//! show memory is linear in the input.
//!
//! Generated content mixes every construct: continuations, comments inside
//! instructions, flags, mounts, JSON forms, multi-pair ENV/LABEL, heredocs.

use std::fmt::Write as _;
use std::time::Instant;

/// A Remfile of `n` instructions (about 100 bytes each).
fn generate(n: usize) -> String {
    let mut s = String::with_capacity(n * 110);
    s.push_str("# syntax=docker/dockerfile:1\nARG BASE=alpine:3.20\nFROM --platform=$BUILDPLATFORM ${BASE} AS build\n");
    let mut i = 2;
    while i < n {
        let r = match i % 10 {
            0 => writeln!(
                s,
                "RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl pkg{i} \\\n    # a comment inside\n    && rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*"
            ),
            1 => writeln!(
                s,
                "COPY --from=build --chown=app:app --chmod=0755 /out/release/bin/tool{i} /out/release/share/tool{i}.1 /usr/local/bin/tool{i}/"
            ),
            2 => writeln!(
                s,
                "ENV VAR{i}=\"value with spaces {i}\" OTHER{i}=x\\ y PATH=/opt/{i}/bin:$PATH LANG=C.UTF-8 TZ=UTC HOME=/home/app/{i}"
            ),
            3 => writeln!(
                s,
                "RUN --mount=type=cache,target=/root/.cache,id=c{i},sharing=locked --mount=type=bind,source=go.sum,target=/src/go.sum --network=none make -j4 target{i}"
            ),
            4 => writeln!(
                s,
                "# comment {i}\nLABEL org.example.n{i}=\"{i}\" org.example.t=\"caf\u{e9} \u{65e5}\u{672c}\" org.opencontainers.image.source=\"https://example.com/org/repository-{i}\""
            ),
            5 => writeln!(
                s,
                "CMD [\"/usr/local/bin/server\", \"--port\", \"{i}\", \"--verbose\", \"--config=/etc/server/x.conf\", \"--log-level=debug\"]"
            ),
            6 => writeln!(
                s,
                "RUN <<EOF\necho step {i}\nfor f in alpha beta gamma delta; do echo \"$f\" >> /tmp/log; done\nEOF"
            ),
            7 => writeln!(
                s,
                "ADD --link --chmod=0644 --checksum=sha256:{i:064x} https://example.com/{i}.tar.gz /tmp/"
            ),
            8 => writeln!(
                s,
                "HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD curl -fsS --max-time 2 http://localhost:{i}/healthz || exit 1"
            ),
            _ => writeln!(
                s,
                "WORKDIR /srv/application/releases/{i}/current\nUSER app:app\nEXPOSE {i}/tcp 443/tcp 8443/udp"
            ),
        };
        r.expect("writing to a String");
        i += if i % 10 == 9 { 3 } else { 1 };
    }
    s
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`):
/// on a shared, loaded machine wall time mostly measures waiting.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    // memory: peak RSS after parsing growing inputs (smallest first, so each
    // peak is set by that size)
    println!("size_mb  instructions  peak_rss_mb  rss/input");
    for n in [12_500, 25_000, 50_000, 100_000] {
        let text = generate(n);
        let ast = remfile_parse::parse(&text).expect("generated Remfile parses");
        let rss = peak_rss_kb() as f64 / 1024.0;
        let mb = text.len() as f64 / 1e6;
        println!(
            "{mb:7.2}  {:12}  {rss:11.1}  {:9.2}",
            ast.instructions.len(),
            rss / (text.len() as f64 / 1_048_576.0)
        );
        drop(ast);
    }

    let text = generate(100_000);
    let mb = text.len() as f64 / 1e6;
    let mut best = f64::MAX;
    let mut best_cpu = f64::MAX;
    let mut count = 0;
    for _ in 0..5 {
        let c = cpu_ns();
        let t = Instant::now();
        let ast = remfile_parse::parse(&text).expect("generated Remfile parses");
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min((cpu_ns() - c) as f64 / 1e9);
        count = ast.instructions.len();
    }
    let ast = remfile_parse::parse(&text).expect("parses");
    let t = Instant::now();
    let json = remfile_parse::to_json(&ast, false);
    let ser = t.elapsed().as_secs_f64();
    println!(
        "parse: {count} instructions, {mb:.2} MB: wall {:.1} ms = {:.1} MB/s; cpu {:.1} ms = {:.1} MB/s (best of 5)",
        best * 1e3,
        mb / best,
        best_cpu * 1e3,
        mb / best_cpu
    );
    println!(
        "to_json: {:.2} MB of JSON in {:.1} ms = {:.1} MB/s of input",
        json.len() as f64 / 1e6,
        ser * 1e3,
        mb / ser
    );
}
