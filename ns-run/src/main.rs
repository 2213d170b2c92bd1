//! `ns-run` CLI: see the crate README.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ns_run::{MountSpec, Network, Output, OverlayDriver, Rlimit, RunSpec, Security};

/// Run one command in fresh namespaces over an overlay of lower dirs; print
/// `{"version":1,"exit_code":N,"upper":"…"}` on stdout.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Lower dir of the overlay (repeatable, top-most first).
    #[arg(long = "lower", value_name = "DIR")]
    lowers: Vec<PathBuf>,
    /// Image whose layers are the lower dirs (instead of --lower), from the image-store store.
    #[arg(long, value_name = "REF", conflicts_with = "lowers")]
    image: Option<String>,
    /// Store root for --image (default: $PELAGOS_STORE, /var/lib/pelagos as root,
    /// ~/.local/share/pelagos otherwise); the default work root is STORE/runs.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Keep the changes in this upper dir (default: a fresh dir under the work root).
    #[arg(long, value_name = "DIR")]
    upper: Option<PathBuf>,
    /// Where run dirs go (default: STORE/runs of the store root above).
    #[arg(long, value_name = "DIR")]
    work_root: Option<PathBuf>,
    /// Environment variable for the command (repeatable; the environment is exactly these
    /// plus PATH and HOME when absent).
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    env: Vec<String>,
    /// Working directory (created if missing).
    #[arg(long, short = 'w', value_name = "DIR")]
    workdir: Option<String>,
    /// User: UID[:GID] or NAME[:GROUP], resolved in the rootfs.
    #[arg(long, short = 'u', value_name = "USER")]
    user: Option<String>,
    /// Host name.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Network: none (loopback only), host, slirp, pasta.
    #[arg(long, default_value = "none", value_name = "MODE")]
    network: Network,
    /// Extra mount: type=bind,source=S,target=T[,rw] | type=cache,source=S,target=T |
    /// type=tmpfs,target=T[,size=N] | type=secret,source=S,target=T[,mode=0400][,uid=0][,gid=0]
    #[arg(long = "mount", value_name = "SPEC", value_parser = parse_mount)]
    mounts: Vec<MountSpec>,
    /// Disable the default seccomp profile.
    #[arg(long)]
    no_seccomp: bool,
    /// Security mode: sandbox (default) or insecure (all capabilities, no seccomp, no masked
    /// paths, /sys writable: BuildKit's security.insecure).
    #[arg(long, default_value = "sandbox", value_name = "MODE")]
    security: Security,
    /// Resource limit of the command, Docker's TYPE=SOFT[:HARD] (-1 = unlimited; repeatable):
    /// core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio,
    /// rttime, sigpending, stack.
    #[arg(long = "ulimit", value_name = "TYPE=SOFT[:HARD]")]
    ulimits: Vec<Rlimit>,
    /// Pass stdin to the command (default: /dev/null).
    #[arg(long, short = 'i')]
    interactive: bool,
    /// Overlay implementation: auto, native, fuse.
    #[arg(long, default_value = "auto", value_name = "DRIVER", value_parser = parse_driver)]
    overlay: OverlayDriver,
    /// Remove DIR (a run dir or upper dir ns-run left) and exit, also rootless where the
    /// command's files belong to sub-ids; no command is run.
    #[arg(long, value_name = "DIR", exclusive = true)]
    rm: Option<PathBuf>,
    /// Command and arguments.
    #[arg(required_unless_present = "rm", last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn parse_driver(s: &str) -> Result<OverlayDriver, String> {
    match s {
        "auto" => Ok(OverlayDriver::Auto),
        "native" => Ok(OverlayDriver::Native),
        "fuse" => Ok(OverlayDriver::Fuse),
        _ => Err(format!("unknown overlay driver {s:?} (auto, native, fuse)")),
    }
}

fn parse_mount(s: &str) -> Result<MountSpec, String> {
    let (mut ty, mut source, mut target, mut rw, mut size) = (None, None, None, false, None);
    let (mut mode, mut uid, mut gid) = (0o400, 0, 0);
    for kv in s.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("bad number {v:?} in --mount"))
        };
        match k {
            "type" => ty = Some(v.to_string()),
            "source" | "src" => source = Some(PathBuf::from(v)),
            "target" | "dst" | "destination" => target = Some(v.to_string()),
            "rw" | "readwrite" => rw = v.is_empty() || v == "true",
            "ro" | "readonly" => rw = !(v.is_empty() || v == "true"),
            "size" => size = Some(v.parse::<u64>().map_err(|_| format!("bad size {v:?}"))?),
            "mode" => mode = u32::from_str_radix(v, 8).map_err(|_| format!("bad mode {v:?}"))?,
            "uid" => uid = num(v)?,
            "gid" => gid = num(v)?,
            _ => return Err(format!("unknown --mount key {k:?}")),
        }
    }
    let target = target.ok_or("--mount needs target=")?;
    let src = || {
        source
            .clone()
            .ok_or_else(|| "--mount needs source=".to_string())
    };
    Ok(match ty.as_deref().unwrap_or("bind") {
        "bind" => MountSpec::Bind {
            source: src()?,
            target,
            readonly: !rw,
        },
        "cache" => MountSpec::Cache {
            source: src()?,
            target,
        },
        "tmpfs" => MountSpec::Tmpfs { target, size },
        "secret" => MountSpec::Secret {
            source: src()?,
            target,
            mode,
            uid,
            gid,
        },
        other => return Err(format!("unknown mount type {other:?}")),
    })
}

extern "C" fn on_signal(sig: libc::c_int) {
    ns_run::forward_signal(sig);
}

fn main() -> ExitCode {
    ns_run::init_if_requested();
    let cli = Cli::parse();
    if let Some(dir) = &cli.rm {
        return match ns_run::remove_tree(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ns-run: error: {e}");
                ExitCode::from(1)
            }
        };
    }
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: the handler only calls the async-signal-safe forward_signal.
        unsafe { libc::signal(s, on_signal as *const () as libc::sighandler_t) };
    }
    let lowers = match &cli.image {
        Some(r) => match ns_run::image_lowers(cli.store.as_deref(), r) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ns-run: error: {e}");
                return ExitCode::from(if e.is_input_error() { 2 } else { 1 });
            }
        },
        None => cli.lowers,
    };
    let work_root = cli
        .work_root
        .or_else(|| cli.store.as_deref().map(ns_run::work_root_for_store));
    let spec = RunSpec {
        lowers,
        upper: cli.upper,
        work_root,
        argv: cli.command,
        env: cli.env,
        workdir: cli.workdir,
        user: cli.user,
        hostname: cli.hostname,
        network: cli.network,
        mounts: cli.mounts,
        no_seccomp: cli.no_seccomp,
        security: cli.security,
        rlimits: cli.ulimits,
        stdin: cli.interactive,
        stdout: Output::Stderr,
        stderr: Output::Inherit,
        overlay: cli.overlay,
        background_cleanup: true,
        helper: None,
    };
    match ns_run::run(&spec) {
        Ok(r) => {
            match serde_json::to_string(&r) {
                // a closed stdout (the reader went away) does not change the command's status
                Ok(s) => {
                    use std::io::Write;
                    let _ = writeln!(std::io::stdout().lock(), "{s}");
                }
                Err(e) => {
                    eprintln!("ns-run: error: {e}");
                    return ExitCode::from(1);
                }
            }
            ExitCode::from(r.exit_code.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("ns-run: error: {e}");
            ExitCode::from(if e.is_input_error() { 2 } else { 1 })
        }
    }
}
