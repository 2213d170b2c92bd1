#!/usr/bin/env python3
"""The timing half of scripts/bench (python3, stdlib only).

scripts/bench prepares the scratch file system, the pelagos template store and the peers, then
runs this with the environment:
  BENCH_FS                the scratch ext4 mount (contexts, stores, outputs live here)
  BENCH_PELAGOS_TEMPLATE  a store holding only busybox:local (snapshot unpacked)
  BENCH_BASE_DOCKER       the same base as a `docker load` archive (for buildah's cold reset)
  PELAGOS_BIN             the pelagos-build binary
  BENCH_PEERS             "" or "buildkit,buildah"
  BENCH_DOCKER_SOCK       the private dockerd socket (with peers)

For every workload and scenario the tools run alternately (the order rotates each run), each run
preceded by an untimed preparation (cold: every cache and image but the base removed, then
`sync`; changed: one context file rewritten). Wall times come from perf_counter around the
timed commands, peak RSS from wait4() (the largest process of the tool's tree).
"""

import argparse
import datetime
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time

TOOLS = ["pelagos", "buildkit", "buildah"]
LABEL = {"pelagos": "pelagos-build", "buildkit": "BuildKit (Docker 20.10)", "buildah": "buildah (chroot, --layers)"}
SHORT = {"pelagos": "pelagos-build", "buildkit": "BuildKit", "buildah": "buildah"}
COLOR = {"pelagos": "#1f6fb4", "buildkit": "#f08a24", "buildah": "#3a9a3a"}
SCENARIOS = ["cold", "cached", "changed", "export"]
SCEN_LABEL = {
    "cold": "cold",
    "cached": "fully cached",
    "changed": "one file changed",
    "export": "cold + OCI tar",
}
# issue 9 targets: pelagos / peer ratio ceilings
TARGETS = {
    ("cold", "buildkit"): 0.8,
    ("cold", "buildah"): 0.4,
    ("cached", "buildkit"): 0.5,
    ("changed", "buildkit"): 0.8,
    ("export", "buildkit"): 0.8,
}
RSS_TARGET_KIB = 100 * 1024


# ---------------------------------------------------------------------------------------------
# workloads: deterministic contexts (seeded PRNG, fixed mtimes)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def blob(rng, n):
    """n bytes, half random and half repeated text: roughly 2:1 compressible, like source trees."""
    half = n // 2
    text = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    return rng.randbytes(half) + (text * (n // len(text) + 1))[: n - half]


def gen_small(d, quick):
    write(f"{d}/Dockerfile", b"""FROM busybox:local
RUN echo hello > /hello
RUN head -c 52428800 /dev/urandom > /big
COPY file.txt /file.txt
ENV GREETING=bench
RUN cat /file.txt
""")
    write(f"{d}/file.txt", b"one context file\n")
    return "file.txt"


def gen_many(d, quick):
    n = 2000 if quick else 20000
    rng = random.Random(9)
    write(f"{d}/Dockerfile", b"""FROM busybox:local
COPY src/ /src/
RUN find /src -type f | wc -l > /count && du -sk /src > /du && cat /count /du
""")
    for i in range(n):
        write(f"{d}/src/d{i // 200:03d}/f{i:05d}.dat", blob(rng, 10240))
    return f"src/d{(n // 2) // 200:03d}/f{n // 2:05d}.dat"


def gen_multistage(d, quick):
    rng = random.Random(3)
    write(f"{d}/Dockerfile", b"""FROM busybox:local AS a
RUN mkdir /out && head -c 20971520 /dev/urandom > /out/a.bin && echo built-a > /out/a.txt

FROM busybox:local AS b
COPY b-src/ /src/
RUN mkdir /out && tar -cf /out/b.tar -C /src . && ls /src | wc -l > /out/b.count

FROM busybox:local
COPY --from=a /out/ /app/a/
COPY --from=b /out/ /app/b/
COPY main.txt /app/main.txt
RUN ls -lR /app > /app/listing
""")
    for i in range(200):
        write(f"{d}/b-src/s{i:03d}.txt", blob(rng, 10240))
    write(f"{d}/main.txt", b"final stage\n")
    return "b-src/s100.txt"


def gen_deep(d, quick):
    lines = ["FROM busybox:local"]
    for i in range(1, 101):
        if i % 10 == 0:
            lines.append(f"COPY files/f{i:03d}.txt /files/")
            write(f"{d}/files/f{i:03d}.txt", f"file {i}\n".encode())
        elif i % 10 == 5:
            lines.append(f"ENV STEP{i}={i}")
        else:
            lines.append(f"RUN echo {i} > /step-{i}")
    write(f"{d}/Dockerfile", ("\n".join(lines) + "\n").encode())
    return "files/f050.txt"


WORKLOADS = {
    "small": (gen_small, "busybox; RUN echo; RUN 50 MB random; COPY 1 file; ENV; RUN cat"),
    "many": (gen_many, "COPY of 20,000 files x 10 KiB (~200 MB), then RUN find/du over them"),
    "multistage": (gen_multistage, "two independent builder stages (20 MB random; tar of 200 files), COPY --from both into a final stage"),
    "deep": (gen_deep, "100 steps: 80 RUN, 10 COPY, 10 ENV"),
}


def describe(wl, quick):
    desc = WORKLOADS[wl][1]
    if wl == "many" and quick:
        desc = desc.replace("20,000", "2,000").replace("~200 MB", "~20 MB") + " (--quick)"
    return desc


def fix_mtimes(d):
    for root, dirs, files in os.walk(d):
        for n in files + dirs:
            os.utime(os.path.join(root, n), (1700000000, 1700000000), follow_symlinks=False)
    os.utime(d, (1700000000, 1700000000))


# ---------------------------------------------------------------------------------------------
# running commands


class Runner:
    def __init__(self, logpath):
        self.log = open(logpath, "ab", buffering=0)

    def run(self, argv, env=None, check=True):
        """Runs argv with output to the log; returns (seconds, maxrss_kib)."""
        self.log.write(("$ " + " ".join(argv) + "\n").encode())
        fa = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, self.log.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, self.log.fileno(), 2),
        ]
        t0 = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, env or os.environ, file_actions=fa)
        _, status, ru = os.wait4(pid, 0)
        dt = time.perf_counter() - t0
        self.cpu = ru.ru_utime + ru.ru_stime
        code = os.waitstatus_to_exitcode(status)
        if check and code != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {code}")
        return dt, ru.ru_maxrss

    def quiet(self, argv, env=None, check=True):
        return self.run(argv, env, check)

    def capture(self, argv, env=None):
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout


class Tool:
    def __init__(self, name, runner, fs):
        self.name, self.r, self.fs = name, runner, fs

    def out(self, wl):
        return f"{self.fs}/out/{self.name}-{wl}.tar"


class Pelagos(Tool):
    def __init__(self, runner, fs):
        super().__init__("pelagos", runner, fs)
        self.bin = os.environ["PELAGOS_BIN"]
        self.store = f"{fs}/pelagos-store"
        self.reset()

    def reset(self):
        shutil.rmtree(self.store, ignore_errors=True)
        subprocess.run(["cp", "-a", os.environ["BENCH_PELAGOS_TEMPLATE"], self.store], check=True)

    def build(self, wl, ctx, export):
        argv = [self.bin, "--store", self.store, "--network", "none", "-q", "-t", f"bench-{wl}:latest"]
        if export:
            argv += ["--output", f"type=oci,dest={self.out(wl)}"]
        return [argv + [ctx]]


class BuildKit(Tool):
    def __init__(self, runner, fs):
        super().__init__("buildkit", runner, fs)
        self.env = dict(os.environ, DOCKER_BUILDKIT="1")
        self.docker = ["/usr/bin/docker", "-H", "unix://" + os.environ["BENCH_DOCKER_SOCK"]]

    def reset(self):
        lines = self.r.capture(self.docker + ["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], self.env)
        tags = [t for t in lines.split() if t.startswith("bench-")]
        if tags:
            self.r.quiet(self.docker + ["rmi", "-f"] + tags, self.env)
        self.r.quiet(self.docker + ["image", "prune", "-f"], self.env)
        self.r.quiet(self.docker + ["builder", "prune", "-af"], self.env)

    def build(self, wl, ctx, export):
        cmds = [self.docker + ["build", "--network", "none", "-q", "-t", f"bench-{wl}:latest", ctx]]
        if export:
            save = self.out(wl) + ".docker"
            cmds.append(self.docker + ["save", "-o", save, f"bench-{wl}:latest"])
            cmds.append(["skopeo", "copy", "-q", f"docker-archive:{save}", f"oci-archive:{self.out(wl)}:bench-{wl}:latest"])
        return cmds


class Buildah(Tool):
    def __init__(self, runner, fs):
        super().__init__("buildah", runner, fs)

    def reset(self):
        self.r.quiet(["buildah", "rm", "--all"])
        self.r.quiet(["buildah", "rmi", "-a", "-f"])
        self.r.quiet(["buildah", "pull", "-q", "docker-archive:" + os.environ["BENCH_BASE_DOCKER"]])

    def build(self, wl, ctx, export):
        cmds = [["buildah", "bud", "--isolation", "chroot", "--layers", "-q", "-t", f"bench-{wl}:latest", ctx]]
        if export:
            cmds.append(["buildah", "push", "-q", f"bench-{wl}:latest", f"oci-archive:{self.out(wl)}:bench-{wl}:latest"])
        return cmds


# ---------------------------------------------------------------------------------------------


def measure(tool, cmds):
    env = tool.env if isinstance(tool, BuildKit) else None
    total, rss, cpu = 0.0, 0, 0.0
    for c in cmds:
        dt, m = tool.r.run(c, env)
        total += dt
        cpu += tool.r.cpu
        rss = max(rss, m)
    return total, rss, cpu


def bench(args):
    fs = os.environ["BENCH_FS"]
    runner = Runner(args.log)
    names = ["pelagos"] + [p for p in os.environ.get("BENCH_PEERS", "").split(",") if p]
    ctor = {"pelagos": Pelagos, "buildkit": BuildKit, "buildah": Buildah}
    tools = [ctor[n](runner, fs) for n in names]
    wls = list(WORKLOADS) if args.workloads == "all" else args.workloads.split(",")
    scs = SCENARIOS if args.scenarios == "all" else args.scenarios.split(",")
    for w in wls:
        if w not in WORKLOADS:
            sys.exit(f"bench: error: unknown workload {w} (small, many, multistage, deep)")
    for s in scs:
        if s not in SCENARIOS:
            sys.exit(f"bench: error: unknown scenario {s} (cold, cached, changed, export)")
    scs = [s for s in SCENARIOS if s in scs]
    load0 = os.getloadavg()
    rows = []  # (workload, scenario, tool, run, seconds, rss_kib, cpu_seconds of the process tree)
    exports = {}  # workload -> "tool: size, layer media types"
    for wl in wls:
        gen, desc = WORKLOADS[wl]
        master = f"{fs}/ctx/{wl}/master"
        t0 = time.perf_counter()
        changed = gen(master, args.quick)
        fix_mtimes(master)
        ctx = {}
        for t in tools:
            ctx[t.name] = f"{fs}/ctx/{wl}/{t.name}"
            subprocess.run(["cp", "-a", master, ctx[t.name]], check=True)
        os.sync()
        desc = describe(wl, args.quick)
        print(f"\n== workload {wl}: {desc} (context made in {time.perf_counter() - t0:.1f}s)", flush=True)
        for sc in scs:
            export = sc == "export"
            if sc in ("cached", "changed"):  # untimed warm-up build of the current context
                for t in tools:
                    measure(t, t.build(wl, ctx[t.name], False))
            for i in range(args.runs):
                k = i % len(tools)
                for t in tools[k:] + tools[:k]:
                    if sc in ("cold", "export"):
                        t.reset()
                        if os.path.exists(t.out(wl)):
                            os.remove(t.out(wl))
                    if sc == "changed":
                        write(f"{ctx[t.name]}/{changed}", f"changed by run {i} of {t.name} at {time.time_ns()}\n".encode())
                    os.sync()
                    secs, rss, cpu = measure(t, t.build(wl, ctx[t.name], export))
                    rows.append((wl, sc, t.name, i, secs, rss, cpu))
            if export:
                exports[wl] = export_summary(tools, wl)
                print("  exported OCI tars: " + exports[wl], flush=True)
            line = f"  {SCEN_LABEL[sc]:<18}"
            med = {}
            for t in tools:
                v = [r[4] for r in rows if r[:3] == (wl, sc, t.name)]
                med[t.name] = statistics.median(v)
                line += f" {SHORT[t.name]} {med[t.name] * 1000:8.0f} ms"
            for t in tools[1:]:
                line += f"  ratio/{SHORT[t.name]} {med['pelagos'] / med[t.name]:.2f}"
            rss = max(r[5] for r in rows if r[:3] == (wl, sc, "pelagos"))
            line += f"  pelagos peak RSS {rss / 1024:.1f} MiB"
            print(line, flush=True)
        for t in tools:  # free the space before the next workload
            if hasattr(t, "reset"):
                t.reset()
        shutil.rmtree(f"{fs}/ctx/{wl}", ignore_errors=True)
    load1 = os.getloadavg()
    report(args, names, wls, scs, rows, load0, load1, exports)


def export_summary(tools, wl):
    """Size and layer media types of each tool's OCI tar, checked by skopeo (a fairness check:
    every tool must have produced a compressed, readable layout)."""
    import json
    parts = []
    for t in tools:
        path = t.out(wl)
        raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{path}"],
                             capture_output=True, text=True)
        if raw.returncode != 0:
            raise RuntimeError(f"skopeo cannot read {path}: {raw.stderr.strip()}")
        m = json.loads(raw.stdout)
        kinds = sorted({l["mediaType"].rsplit(".", 1)[-1] for l in m.get("layers", [])})
        parts.append(f"{SHORT[t.name]} {os.path.getsize(path) / 1e6:.1f} MB, "
                     f"{len(m.get('layers', []))} layers ({'/'.join(kinds)})")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# report: RESULTS.md, bench.svg, raw.tsv


def versions(names):
    v = {}
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    v["pelagos"] = "pelagos-build @ " + (git.stdout.strip() or "?")
    if "buildkit" in names:
        v["buildkit"] = "Docker " + subprocess.run(
            ["/usr/bin/docker", "-H", "unix://" + os.environ["BENCH_DOCKER_SOCK"], "version", "-f", "{{.Server.Version}}"],
            capture_output=True, text=True).stdout.strip()
    if "buildah" in names:
        v["buildah"] = subprocess.run(["buildah", "--version"], capture_output=True, text=True).stdout.strip()
    return v


def summary(rows, wl, sc, tool):
    v = [r[4] for r in rows if r[:3] == (wl, sc, tool)]
    m = [r[5] for r in rows if r[:3] == (wl, sc, tool)]
    c = [r[6] for r in rows if r[:3] == (wl, sc, tool)]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), max(m), statistics.median(c)


def report(args, names, wls, scs, rows, load0, load1, exports):
    os.makedirs(args.out, exist_ok=True)
    with open(f"{args.out}/raw.tsv", "w") as f:
        f.write("workload\tscenario\ttool\trun\tseconds\tpeak_rss_kib\tcpu_seconds\n")
        for r in rows:
            f.write(f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4]:.4f}\t{r[5]}\t{r[6]:.3f}\n")
    ver = versions(names)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = ["# Build benchmark: pelagos-build vs BuildKit vs buildah", ""]
    md.append(f"Run {now} with `scripts/bench {'--with-peers ' if len(names) > 1 else ''}"
              f"--workload {','.join(wls)} --runs {args.runs}{' --quick' if args.quick else ''}`; "
              f"{os.cpu_count()} cores, kernel {platform.release()}, load average {load0[0]:.1f} at start, "
              f"{load1[0]:.1f} at the end. Medians of {args.runs} alternating runs (min–max in the raw data, "
              f"`raw.tsv`); all state on one journaled ext4 loop file system.")
    md.append("")
    md.append("Tools: " + "; ".join(ver[n] for n in names) + ".")
    md.append("")
    md.append("Scenarios: **cold** = every cache and image except the busybox base removed; **fully cached** = "
              "the same context again; **one file changed** = one COPY source rewritten before each run; "
              "**cold + OCI tar** = cold build then an OCI layout tar with gzip layers (pelagos-build "
              "`--output type=oci`; BuildKit + `docker save` + `skopeo copy … oci-archive:`; buildah + "
              "`buildah push … oci-archive:`).")
    md.append("")
    hdr = ["workload", "scenario"] + [SHORT[n] + " (ms)" for n in names]
    hdr += [f"pelagos/{SHORT[n]}" for n in names[1:]]
    hdr += ["pelagos CPU (ms)", "pelagos peak RSS (MiB)"]
    md.append("| " + " | ".join(hdr) + " |")
    md.append("|" + "---|" * len(hdr))
    for wl in wls:
        for sc in scs:
            s = {n: summary(rows, wl, sc, n) for n in names}
            if s["pelagos"] is None:
                continue
            cells = [wl, SCEN_LABEL[sc]]
            cells += [f"{s[n][0] * 1000:.0f}" for n in names]
            for n in names[1:]:
                ratio = s["pelagos"][0] / s[n][0]
                tgt = TARGETS.get((sc, n))
                mark = "" if tgt is None else (f" ✓ (≤{tgt})" if ratio <= tgt else f" ✗ (≤{tgt})")
                cells.append(f"{ratio:.2f}{mark}")
            cells.append(f"{s['pelagos'][4] * 1000:.0f}")
            rss = s["pelagos"][3]
            cells.append(f"{rss / 1024:.0f}" + ("" if rss <= RSS_TARGET_KIB else " ✗ (≤100)"))
            md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md.append("Workloads: " + "; ".join(f"**{w}**: {describe(w, args.quick)}" for w in wls) + ".")
    md.append("")
    for wl, e in exports.items():
        md.append(f"Exported OCI tars ({wl}, checked with `skopeo inspect`): {e}.")
        md.append("")
    md.append("Peak RSS is the largest process of pelagos-build's tree (wait4 `ru_maxrss`), RUN "
              "commands included; pelagos CPU is user+sys of that tree (RUN commands included; the peers' "
              "work happens in daemons or is not comparable, so only pelagos-build's is shown). Targets (issue 9) are shown as ✓/✗ next to the ratios.")
    md.append("")
    md.append("![chart](bench.svg)")
    md.append("")
    with open(f"{args.out}/RESULTS.md", "w") as f:
        f.write("\n".join(md))
    with open(f"{args.out}/bench.svg", "w") as f:
        f.write(svg(names, wls, scs, rows, now, args.quick))
    print(f"\nwrote {args.out}/RESULTS.md, {args.out}/bench.svg, {args.out}/raw.tsv")
    print("\n".join(md[md.index("| " + " | ".join(hdr) + " |"):][: 2 + len(wls) * len(scs)]))


def clip(s, n):
    return s if len(s) <= n else s[: n - 1] + "…"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(names, wls, scs, rows, now, args_quick):
    bar, gap, group_gap, left, panel_h, top = 26, 4, 36, 70, 210, 64
    group_w = len(names) * (bar + gap) - gap
    width = left + len(scs) * (group_w + group_gap) + 20
    height = top + len(wls) * (panel_h + 40) + 10
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{left}" y="20" font-size="15" font-weight="bold">Build time, median ms '
         f'(lower is better) — {esc(now)}</text>']
    x = left
    for n in names:
        o.append(f'<rect x="{x}" y="32" width="12" height="12" fill="{COLOR[n]}"/>')
        o.append(f'<text x="{x + 16}" y="42">{esc(LABEL[n])}</text>')
        x += 16 + 7 * len(LABEL[n]) + 20
    for p, wl in enumerate(wls):
        y0 = top + p * (panel_h + 40) + 20
        vals = [summary(rows, wl, sc, n) for sc in scs for n in names]
        vmax = max((v[0] for v in vals if v), default=1) * 1000 or 1
        o.append(f'<text x="8" y="{y0 - 6}" font-size="13" font-weight="bold">{esc(wl)}</text>')
        o.append(f'<text x="{8 + 9 * len(wl) + 10}" y="{y0 - 6}" fill="#555">{esc(clip(describe(wl, args_quick), 72))}</text>')
        base = y0 + panel_h - 20
        o.append(f'<line x1="{left - 4}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#333"/>')
        for tick in (0.5, 1.0):
            ty = base - (panel_h - 40) * tick
            o.append(f'<line x1="{left - 4}" y1="{ty:.1f}" x2="{width - 10}" y2="{ty:.1f}" stroke="#ddd"/>')
            o.append(f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end">{vmax * tick:.0f}</text>')
        for g, sc in enumerate(scs):
            gx = left + g * (group_w + group_gap)
            for k, n in enumerate(names):
                s = summary(rows, wl, sc, n)
                if not s:
                    continue
                v = s[0] * 1000
                h = (panel_h - 40) * v / vmax
                bx = gx + k * (bar + gap)
                o.append(f'<rect x="{bx}" y="{base - h:.1f}" width="{bar}" height="{h:.1f}" fill="{COLOR[n]}">'
                         f'<title>{esc(LABEL[n])} {esc(SCEN_LABEL[sc])}: {v:.0f} ms</title></rect>')
                o.append(f'<text x="{bx + bar / 2}" y="{base - h - 3:.1f}" text-anchor="middle" '
                         f'font-size="9">{v:.0f}</text>')
            o.append(f'<text x="{gx + group_w / 2}" y="{base + 14}" text-anchor="middle">{esc(SCEN_LABEL[sc])}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="all")
    ap.add_argument("--scenarios", default="all")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", required=True)
    bench(ap.parse_args())


if __name__ == "__main__":
    main()
