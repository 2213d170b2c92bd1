#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/seed-*.

Run from anywhere: `python3 fuzz/make-seeds.py`. Deterministic (fixed mtimes, no randomness),
so re-running it changes nothing. Needs `zstd` on PATH for the zstd seeds.
"""

import bz2
import gzip
import io
import json
import lzma
import os
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
FIXTURES = os.path.join(HERE, "..", "remfile-plan", "tests", "fixtures")
# end the archive after its two zero blocks (no 10 KiB record padding): small seeds mutate faster
tarfile.RECORDSIZE = tarfile.BLOCKSIZE
D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- tar building ---------------------------------------------------------------------------


def info(name, kind=tarfile.REGTYPE, size=0, link="", mode=0o644, pax=None):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.size = size
    t.linkname = link
    t.mode = mode
    t.mtime = 1700000000
    t.uid = t.gid = 0
    t.uname = t.gname = ""
    if pax:
        t.pax_headers = pax
    return t


def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            if isinstance(e, tuple):
                t, content = e
                t.size = len(content)
                tf.addfile(t, io.BytesIO(content))
            else:
                tf.addfile(e)
    return buf.getvalue()


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True, check=True).stdout


def gz(data):
    return gzip.compress(data, mtime=0)


LAYER = tar(
    [
        info("etc/", tarfile.DIRTYPE, mode=0o755),
        (info("etc/hosts"), b"127.0.0.1 localhost\n"),
        info("etc/link", tarfile.SYMTYPE, link="hosts"),
        info("etc/hard", tarfile.LNKTYPE, link="etc/hosts"),
        info("etc/.wh.gone"),
        info("opq/", tarfile.DIRTYPE, mode=0o755),
        info("opq/.wh..wh..opq"),
        info("fifo", tarfile.FIFOTYPE),
        (info("d/" + "long" * 40, pax={"SCHILY.xattr.user.k": "v"}), b"x"),
    ]
)
GNU = tar(
    [
        info("a/" + "n" * 120, tarfile.DIRTYPE, mode=0o755),
        info("a/s", tarfile.SYMTYPE, link="t" * 150),
    ],
    tarfile.GNU_FORMAT,
)
HOSTILE = {
    "dotdot": tar([(info("../evil"), b"x")]),
    "absolute": tar([(info("/etc/evil"), b"x")]),
    "symlink-escape": tar(
        [info("s", tarfile.SYMTYPE, link="../outside"), (info("s/canary"), b"pwned")]
    ),
    "symlink-abs": tar([info("s", tarfile.SYMTYPE, link="/"), (info("s/tmp/evil"), b"x")]),
    "hardlink-escape": tar([info("h", tarfile.LNKTYPE, link="../outside/canary")]),
    "hardlink-dir": tar([info("d/", tarfile.DIRTYPE), info("h", tarfile.LNKTYPE, link="d")]),
    "lower-escape": tar([(info("escape/canary"), b"pwned"), (info("abs/tmp/x"), b"x")]),
    "device": tar([info("dev/null", tarfile.CHRTYPE)]),
    "whiteout-dotdot": tar([info("a/.wh..."), info("../.wh.x")]),
}

# ---- tar_unpack: first byte = options -------------------------------------------------------
for ctl, name in [(0, "plain"), (2, "overlay"), (3, "overlay-user"), (4, "verified"), (0x20, "owners")]:
    put("tar_unpack", name, bytes([ctl]) + LAYER)
put("tar_unpack", "gzip", bytes([0]) + gz(LAYER))
put("tar_unpack", "zstd", bytes([2]) + zstd(LAYER))
put("tar_unpack", "gnu", bytes([0]) + GNU)
put("tar_unpack", "truncated", bytes([0]) + LAYER[:700])
for name, blob in HOSTILE.items():
    put("tar_unpack", name, bytes([0x10]) + blob)


def raw_header(name, typ, size_field):
    h = bytearray(512)
    h[0 : len(name)] = name
    h[100:108] = b"0000755\0"
    h[108:116] = h[116:124] = b"0000000\0"
    h[124:136] = size_field
    h[136:148] = b"00000000000\0"
    h[156] = typ
    h[257:265] = b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


# numeric extremes (found by reading tarread.rs, then run through this target): a base-256 size
# of 2^64-1, a PAX mtime of the smallest int64 with a fraction
put("tar_unpack", "huge-size", b"\0" + raw_header(b"d/", ord("5"), bytes([0x80, 0, 0, 0]) + b"\xff" * 8) + bytes(1024))
rec = b"mtime=-9223372036854775808.5\n"
rec = b"%d %s" % (len(rec) + 3, rec)
pax = raw_header(b"PaxHeaders/f", ord("x"), b"%011o\0" % len(rec)) + rec + bytes(512 - len(rec))
put("tar_unpack", "pax-mtime-min", b"\0" + pax + raw_header(b"f", ord("0"), b"00000000000\0") + bytes(1024))

# ---- archive_detect: the file content -------------------------------------------------------
SMALL = tar([info("dir/", tarfile.DIRTYPE), (info("dir/f"), b"hello\n"),
             info("dir/l", tarfile.LNKTYPE, link="dir/f")])
put("archive_detect", "tar", SMALL)
put("archive_detect", "gzip", gz(SMALL))
put("archive_detect", "bzip2", bz2.compress(SMALL))
put("archive_detect", "xz", lzma.compress(SMALL, format=lzma.FORMAT_XZ))
put("archive_detect", "zstd", zstd(SMALL))
put("archive_detect", "gnu", GNU)
put("archive_detect", "not-an-archive", b"just some text\n")
for name in ["dotdot", "absolute", "symlink-escape", "hardlink-escape", "hardlink-dir"]:
    put("archive_detect", name, HOSTILE[name])
# structural conflicts: below a file, below a symlink, a directory replaced, links to nowhere
put("archive_detect", "below-file", tar([(info("a"), b"x"), (info("a/b"), b"y")]))
put("archive_detect", "below-symlink", tar([info("s", tarfile.SYMTYPE, link="/etc"), (info("s/passwd"), b"y")]))
put("archive_detect", "dir-replaced", tar([info("d/", tarfile.DIRTYPE), (info("d/f"), b"x"), (info("d"), b"now a file")]))
put("archive_detect", "link-chain", tar([(info("f"), b"x"), info("l1", tarfile.LNKTYPE, link="f"),
                                         info("l2", tarfile.LNKTYPE, link="l1"), info("l3", tarfile.LNKTYPE, link="missing")]))

# ---- plan: REMFILE \0 ARGS \0 TARGET \0 PLATFORM \0 CONFIG \0 WORD --------------------------
BASE_CONFIG = json.dumps(
    {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", "A=from-base"],
            "Cmd": ["sh"],
            "WorkingDir": "/w",
            "OnBuild": ["RUN echo $A", "COPY . /app"],
            "Labels": {"l": "v"},
        },
        "rootfs": {"type": "layers", "diff_ids": [D1]},
    }
)
for f in sorted(os.listdir(FIXTURES)):
    text = open(os.path.join(FIXTURES, f)).read()
    put("plan", f.replace(".Remfile", ""), "\0".join([text, "VERSION=1.2\nALPINE", "", "linux/arm64", BASE_CONFIG, "${VERSION:-x}"]))
    put("parse", f.replace(".Remfile", ""), text)
put(
    "plan",
    "expansion",
    "\0".join(
        [
            "ARG A=1 B=${A}2\nFROM img:${B} AS s1\nENV C=${A:+set} D=${NOPE:-dflt} E=${A#?} F=${B/2/two}\n"
            "RUN echo $C $D $E $F \\\n  && true\nFROM s1\nARG B\nCOPY --from=s1 /${B} /dst\n",
            "A=x\nB",
            "s1",
            "linux/amd64",
            "{}",
            "'$A' \"${B%%2*}\" \\$C ${A//x/y}",
        ]
    ),
)

# ---- reference -------------------------------------------------------------------------------
for i, r in enumerate(
    [
        "busybox",
        "busybox:1.36",
        "library/busybox@" + D1,
        "docker.io/me/app:v1",
        "index.docker.io/x",
        "localhost:5000/a/b_c/d-e:tag",
        "[::1]:5000/x:y@" + D2,
        "Foo/bar",
        "ghcr.io/o/r__x.y",
        "sha256:" + "0" * 64,
    ]
):
    put("reference", str(i), r)

# ---- manifest ----------------------------------------------------------------------------------
def desc(mt, d, size, platform=None, ann=None):
    x = {"mediaType": mt, "digest": d, "size": size}
    if platform:
        x["platform"] = platform
    if ann:
        x["annotations"] = ann
    return x


MT_M = "application/vnd.oci.image.manifest.v1+json"
put(
    "manifest",
    "index",
    json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                desc(MT_M, D1, 500, {"architecture": "amd64", "os": "linux"}),
                desc(MT_M, D2, 500, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
                desc(MT_M, D3, 300, {"architecture": "unknown", "os": "unknown"},
                     {"vnd.docker.reference.type": "attestation-manifest"}),
                desc("application/vnd.oci.image.index.v1+json", D3, 200),
            ],
        }
    ),
)
put(
    "manifest",
    "manifest",
    json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MT_M,
            "config": desc("application/vnd.oci.image.config.v1+json", D1, 100),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", D2, 1000)],
            "annotations": {"a": "b"},
            "subject": desc(MT_M, D3, 10),
        }
    ),
)
put("manifest", "config", BASE_CONFIG)
put("manifest", "challenge", 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"')

# ---- dockerignore: FILE \0 PATHS -------------------------------------------------------------
put(
    "dockerignore",
    "basic",
    "# comment\n*.tmp\n**/*.log\n!keep.log\nbuild/\n/abs\n[a-c]?.txt\nsub/**/x\n!sub/y/x\n\0"
    "a.tmp\nd/e.log\nkeep.log\nbuild/out/x\nabs\nb1.txt\nsub/z/x\nsub/y/x\n../up\n./a/./b\n",
)
put("dockerignore", "escapes", "\\!bang\n[^a]*\n**\n!**/*.go\n\0bang\n!bang\nx.go\nd/x.go\n")
