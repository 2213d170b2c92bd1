#!/usr/bin/env python3
"""The diffing half of compare-buildkit (python3, stdlib only; zstd layers need `zstd`).

  compare-images.py OUT_DIR CASE...

OUT_DIR/CASE holds ctx/ (the case), bk.rc/bk.tar (`docker save` of BuildKit's image) and
pb.rc/pb.tar (our `--output type=oci`), or `skip`. Prints one block per case and exits 1 when a
case differs that its Dockerfile does not mark `# compare-known: REASON`.
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

CONFIG_KEYS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
               "Volumes", "StopSignal", "Healthcheck", "Shell", "OnBuild"]


def open_layer(data):
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:4] == b"\x28\xb5\x2f\xfd":
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def docker_image(path):
    """(config, [layer tarfile]) of a `docker save` archive."""
    with tarfile.open(path) as t:
        man = json.load(t.extractfile("manifest.json"))[0]
        cfg = json.load(t.extractfile(man["Config"]))
        layers = [open_layer(t.extractfile(l).read()) for l in man["Layers"]]
    return cfg, layers


def oci_image(path):
    """(config, [layer tarfile]) of an OCI layout tar."""
    with tarfile.open(path) as t:
        def blob(d):
            return t.extractfile("blobs/" + d.replace(":", "/")).read()
        idx = json.load(t.extractfile("index.json"))
        man = json.loads(blob(idx["manifests"][0]["digest"]))
        if "manifests" in man:  # an index inside
            man = json.loads(blob(man["manifests"][0]["digest"]))
        cfg = json.loads(blob(man["config"]["digest"]))
        layers = [open_layer(blob(l["digest"])) for l in man["layers"]]
    return cfg, layers


def flatten(layers):
    """path -> dict(type, mode, uid, gid, link, sha256, size, mtime), whiteouts applied."""
    fs = {}
    for t in layers:
        members = t.getmembers()
        # opaque dirs and whiteouts first (they apply to the lower layers only)
        for m in members:
            name = m.name.lstrip("./").rstrip("/")
            base = os.path.basename(name)
            parent = os.path.dirname(name)
            if base == ".wh..wh..opq":
                pre = parent + "/" if parent else ""
                for p in [p for p in fs if p.startswith(pre)]:
                    del fs[p]
            elif base.startswith(".wh."):
                gone = os.path.join(parent, base[4:])
                for p in [p for p in fs if p == gone or p.startswith(gone + "/")]:
                    del fs[p]
        for m in members:
            name = m.name.lstrip("./").rstrip("/")
            if not name or os.path.basename(name).startswith(".wh."):
                continue
            e = {"mode": oct(m.mode & 0o7777), "uid": m.uid, "gid": m.gid, "mtime": int(m.mtime)}
            xattrs = {k[len("SCHILY.xattr."):]: v for k, v in (m.pax_headers or {}).items()
                      if k.startswith("SCHILY.xattr.")}
            if xattrs:
                e["xattrs"] = xattrs
            if m.isdir():
                e["type"] = "dir"
            elif m.issym():
                e["type"], e["link"] = "symlink", m.linkname
            elif m.islnk():
                tgt = fs.get(m.linkname.lstrip("./").rstrip("/"), {})
                e.update({k: tgt.get(k) for k in ("type", "sha256", "size")})
                e["hardlink"] = m.linkname.lstrip("./")
            elif m.isfile():
                data = t.extractfile(m).read()
                e.update(type="file", sha256=hashlib.sha256(data).hexdigest()[:16], size=len(data))
            elif m.ischr() or m.isblk():
                e.update(type="dev", dev=(m.devmajor, m.devminor))
            elif m.isfifo():
                e["type"] = "fifo"
            if name in fs and fs[name]["type"] == "dir" and e["type"] == "dir":
                pass
            elif name in fs and e["type"] != "dir" or (name in fs and fs[name]["type"] != "dir"):
                for p in [p for p in fs if p.startswith(name + "/")]:
                    del fs[p]
            fs[name] = e
    return fs


def history(cfg):
    return [(h.get("created_by", ""), bool(h.get("empty_layer", False))) for h in cfg.get("history", [])]


def compare(out, case):
    """(verdict, lines): verdict is same, DIFF, known (a `# compare-known:` case) or skip."""
    d = os.path.join(out, case)
    if os.path.exists(f"{d}/skip"):
        return "skip", [open(f"{d}/skip").read().strip()]
    verdict, lines = compare_builds(d)
    known = [l for l in open(f"{d}/ctx/Dockerfile", errors="replace") if l.startswith("# compare-known:")]
    if verdict == "DIFF" and known:
        return "known", ["known difference:" + known[0].split(":", 1)[1].rstrip()] + lines
    return verdict, lines


def compare_builds(d):
    bk_rc = open(f"{d}/bk.rc").read().strip()
    pb_rc = open(f"{d}/pb.rc").read().strip()
    if bk_rc != "0" or pb_rc != "0":
        if bk_rc != "0" and pb_rc != "0":
            return "same", ["both reject: buildkit: " + last_error(f"{d}/bk.log"),
                            "  pelagos: " + last_error(f"{d}/pb.log")]
        who = "BuildKit" if bk_rc != "0" else "pelagos-build"
        return "DIFF", [f"only {who} fails: " + last_error(f"{d}/{'bk' if bk_rc != '0' else 'pb'}.log")]
    bcfg, blayers = docker_image(f"{d}/bk.tar")
    pcfg, players = oci_image(f"{d}/pb.tar")
    diffs, notes = [], []
    bc, pc = bcfg.get("config", {}) or {}, pcfg.get("config", {}) or {}
    # the keys above first, then any other key either config sets (empty values equal absent)
    for k in CONFIG_KEYS + sorted((set(bc) | set(pc)) - set(CONFIG_KEYS)):
        bv, pv = bc.get(k) or None, pc.get(k) or None
        if bv != pv:
            diffs.append(f"config {k}: buildkit={json.dumps(bv)} pelagos={json.dumps(pv)}")
    for k in ("architecture", "os", "variant", "author"):
        bv, pv = bcfg.get(k) or None, pcfg.get(k) or None
        if bv != pv:
            diffs.append(f"{k}: buildkit={json.dumps(bv)} pelagos={json.dumps(pv)}")
    bh, ph = history(bcfg), history(pcfg)
    if bh != ph:
        for i in range(max(len(bh), len(ph))):
            b = bh[i] if i < len(bh) else None
            p = ph[i] if i < len(ph) else None
            if b != p:
                diffs.append(f"history[{i}]: buildkit={b} pelagos={p}")
    if len(blayers) != len(players):
        diffs.append(f"layer count: buildkit={len(blayers)} pelagos={len(players)}")
    if len(blayers) == len(players):
        # per-layer entry names (whiteouts included): reported as notes, the flattened file
        # system below is what must agree
        for i, (bl, pl) in enumerate(zip(blayers, players)):
            bn = {m.name.lstrip("./").rstrip("/") for m in bl.getmembers()} - {""}
            pn = {m.name.lstrip("./").rstrip("/") for m in pl.getmembers()} - {""}
            if bn != pn:
                notes.append(f"layer {i}: only buildkit {sorted(bn - pn)[:5]} only pelagos {sorted(pn - bn)[:5]}")
    bfs, pfs = flatten(blayers), flatten(players)
    for p in sorted(set(bfs) | set(pfs)):
        b, q = bfs.get(p), pfs.get(p)
        if b is None or q is None:
            diffs.append(f"rootfs /{p}: only in {'pelagos' if b is None else 'buildkit'} {fmt(b or q)}")
            continue
        bb = {k: v for k, v in b.items() if k not in ("mtime", "hardlink")}
        qq = {k: v for k, v in q.items() if k not in ("mtime", "hardlink")}
        if bb != qq:
            diffs.append(f"rootfs /{p}: buildkit {fmt(b)} pelagos {fmt(q)}")
        elif b["mtime"] != q["mtime"]:
            notes.append(f"mtime /{p}: buildkit {b['mtime']} pelagos {q['mtime']}")
    return ("DIFF" if diffs else "same"), diffs + notes


def fmt(e):
    s = f"{e['type']} {e['mode']} {e['uid']}:{e['gid']}"
    if e.get("link"):
        s += f" -> {e['link']}"
    if e.get("sha256"):
        s += f" sha256:{e['sha256']} ({e['size']} B)"
    if e.get("xattrs"):
        s += f" xattrs:{sorted(e['xattrs'])}"
    return s


def last_error(log):
    lines = [l.strip() for l in open(log, errors="replace") if l.strip()]
    errs = [l for l in lines if "error" in l.lower()]
    return (errs or lines or ["(no output)"])[-1][:300]


def main():
    out, cases = sys.argv[1], sys.argv[2:]
    bad = known = skipped = 0
    for c in cases:
        verdict, lines = compare(out, c)
        print(f"== {c}: {verdict}")
        mt = [l for l in lines if l.startswith("mtime ")]
        ly = [l for l in lines if l.startswith("layer ")]
        for l in lines:
            if not l.startswith(("mtime ", "layer ")):
                print("   " + l)
        if mt:
            print(f"   note: {len(mt)} mtime(s) differ, e.g. {mt[0]}")
        for l in ly:
            print(f"   note: {l}")
        bad += verdict == "DIFF"
        known += verdict == "known"
        skipped += verdict == "skip"
    same = len(cases) - bad - known - skipped
    print(f"compare-buildkit: {same} of {len(cases)} cases agree, {known} known differences, "
          f"{skipped} skipped, {bad} differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
