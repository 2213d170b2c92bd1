//! Small value grammars: paths, ports, sizes, signals, Go-style quoting.

use std::fmt::Write as _;

/// Go's `path.Clean` for an absolute path (the result always starts with `/`).
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A COPY/ADD destination made absolute against `workdir`; a trailing `/` (or `/.`, `.`, empty)
/// is kept as a trailing `/`, which means "into this directory".
pub fn resolve_dest(workdir: &str, dest: &str) -> String {
    let keep_slash = dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.");
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let mut c = clean_path(&joined);
    if keep_slash && c != "/" {
        c.push('/');
    }
    c
}

/// One EXPOSE word (`80`, `80/udp`, `8000-8010/tcp`, `127.0.0.1:80:80`) as `port/proto`
/// entries, ranges expanded, with the checks of Docker's `nat.ParsePortSpec`: the IP and host
/// port parts must be valid (and a host range as long as a container range), a missing or
/// empty protocol is `tcp`, only the first `/` and `-` split (`80/udp/x` is `80/udp`).
pub fn parse_ports(word: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = word.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (String::new(), "", *c),
        [h, c] => (String::new(), *h, *c),
        [rest @ .., h, c] => (rest.join(":"), *h, *c),
        [] => (String::new(), "", ""),
    };
    let mut pp = container.split('/');
    let (proto, container) = match (pp.next().unwrap_or(""), pp.next()) {
        ("", _) => ("", ""),
        (p, None | Some("")) => ("tcp", p),
        (p, Some(proto)) => (proto, p),
    };
    let ip = match ip.strip_prefix('[') {
        Some(v6) => v6.get(..v6.len().saturating_sub(1)).unwrap_or(""),
        None => ip.as_str(),
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err(format!("no port specified: {word}<empty>"));
    }
    let (start, end) =
        port_range(container).ok_or_else(|| format!("invalid containerPort: {container}"))?;
    if !host.is_empty() {
        let (hs, he) = port_range(host).ok_or_else(|| format!("invalid hostPort: {host}"))?;
        if end - start != he - hs && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            ));
        }
    }
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Docker's `nat.ParsePortRange`: `N` or `A-B` (only the first two `-` parts count), decimal
/// digits only, `B >= A`.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let num = |t: &str| -> Option<u16> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse::<u64>().ok().and_then(|n| u16::try_from(n).ok())
    };
    match s.split_once('-') {
        None => num(s).map(|p| (p, p)),
        Some((a, rest)) => {
            let b = rest.split('-').next().unwrap_or("");
            let (a, b) = (num(a)?, num(b)?);
            (b >= a).then_some((a, b))
        }
    }
}

/// A size with an optional unit (`64m`, `1g`, `512`, `2GiB`, `10kb`) in bytes, as Docker's
/// `RAMInBytes`.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    let v = n * mult as f64;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

const SIGNALS: [&str; 34] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// A STOPSIGNAL value Docker accepts: a non-zero number or a name with or without `SIG`
/// (`RTMIN+n` and `RTMAX-n` included).
pub fn valid_signal(s: &str) -> bool {
    // Go's strconv.Atoi (sign allowed, any non-zero value: `-1` and `+9` are valid)
    if let Ok(n) = s.parse::<i64>() {
        return n != 0;
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if SIGNALS.contains(&name) || name == "RTMIN" || name == "RTMAX" {
        return true;
    }
    // the names of Go's signal map only: `RTMIN+3`, never `RTMIN+03` or `RTMIN++3`
    let rt = |prefix: &str| (1..=15).any(|n| name == format!("{prefix}{n}"));
    rt("RTMIN+") || rt("RTMAX-")
}

/// Go's `time.Duration.String` of nanoseconds (`0s`, `1.5s`, `1m30s`, `100ms`).
pub fn go_duration(ns: u64) -> String {
    fn frac(v: u64, unit: u64) -> String {
        let (int, rest) = (v / unit, v % unit);
        if rest == 0 {
            return int.to_string();
        }
        let width = unit.to_string().len() - 1;
        let digits = format!("{rest:0width$}");
        format!("{int}.{}", digits.trim_end_matches('0'))
    }
    const S: u64 = 1_000_000_000;
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", frac(n, 1_000)),
        n if n < S => format!("{}ms", frac(n, 1_000_000)),
        n => {
            let (h, m, s) = (n / (3600 * S), n / (60 * S) % 60, n % (60 * S));
            let secs = format!("{}s", frac(s, S));
            if h > 0 {
                format!("{h}h{m}m{secs}")
            } else if m > 0 {
                format!("{m}m{secs}")
            } else {
                secs
            }
        }
    }
}

/// Go's `%q` of a string (close enough for history text).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of an integer: a quoted character literal (`'\x04'`, `'A'`, `'\n'`).
pub fn go_quote_rune(n: u32) -> String {
    match char::from_u32(n) {
        Some('\'') => "'\\''".into(),
        Some('\\') => "'\\\\'".into(),
        Some('\x07') => "'\\a'".into(),
        Some('\x08') => "'\\b'".into(),
        Some('\x0c') => "'\\f'".into(),
        Some('\n') => "'\\n'".into(),
        Some('\r') => "'\\r'".into(),
        Some('\t') => "'\\t'".into(),
        Some('\x0b') => "'\\v'".into(),
        Some(c) if n < 0x80 && !c.is_ascii_control() => format!("'{c}'"),
        Some(c) if n >= 0xa0 && !c.is_control() => format!("'{c}'"),
        _ if n < 0x80 => format!("'\\x{n:02x}'"),
        _ if n < 0x1_0000 => format!("'\\u{n:04x}'"),
        _ => format!("'\\U{n:08x}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(clean_path("/a/./b/../c//"), "/a/c");
        assert_eq!(clean_path("/.."), "/");
        assert_eq!(resolve_dest("/app", "."), "/app/");
        assert_eq!(resolve_dest("/app", ""), "/app/");
        assert_eq!(resolve_dest("/app", "x"), "/app/x");
        assert_eq!(resolve_dest("/app", "x/"), "/app/x/");
        assert_eq!(resolve_dest("/app", "/abs/./y/"), "/abs/y/");
        assert_eq!(resolve_dest("/", "/"), "/");
        assert_eq!(resolve_dest("/app", "../up"), "/up");
    }

    #[test]
    fn ports() {
        assert_eq!(parse_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            parse_ports("8000-8002/sctp").unwrap(),
            vec!["8000/sctp", "8001/sctp", "8002/sctp"]
        );
        assert_eq!(parse_ports("127.0.0.1:8080:80").unwrap(), vec!["80/tcp"]);
        // nat.ParsePortSpec: an empty protocol is tcp, leading zeros and extra parts ignored
        assert_eq!(parse_ports("80/").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_ports("00081").unwrap(), vec!["81/tcp"]);
        assert_eq!(parse_ports("80/udp/x").unwrap(), vec!["80/udp"]);
        assert_eq!(parse_ports("1-2-9").unwrap(), vec!["1/tcp", "2/tcp"]);
        assert_eq!(parse_ports("[::1]:90:91").unwrap(), vec!["91/tcp"]);
        assert_eq!(parse_ports("8000-8001:80").unwrap(), vec!["80/tcp"]);
        for bad in [
            "",
            "x",
            "80/icmp",
            "70000",
            "9-1",
            "-1",
            "+80",
            "/tcp",
            "abc:80",
            "1.2.3:80:80",
            "80-81:90-92",
            "80-",
            ":",
        ] {
            assert!(parse_ports(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_and_signals() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("5q"), None);
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1", "sigusr1"] {
            assert!(valid_signal(ok), "{ok}");
        }
        for ok in ["-1", "+9", "009"] {
            assert!(valid_signal(ok), "{ok}");
        }
        for bad in [
            "0", "-0", "SIGFOO", "", "RTMIN+16", "RTMIN+03", "RTMIN++3", "SIG9",
        ] {
            assert!(!valid_signal(bad), "{bad}");
        }
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(go_quote_rune(4), r"'\x04'");
        assert_eq!(go_quote_rune(0), r"'\x00'");
        assert_eq!(go_quote_rune(10), r"'\n'");
        assert_eq!(go_quote_rune(65), "'A'");
        assert_eq!(go_quote_rune(0x7f), r"'\x7f'");
        assert_eq!(go_quote_rune(0x85), r"'\u0085'");
        for (ns, s) in [
            (0, "0s"),
            (5_000_000_000, "5s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (100_000_000, "100ms"),
            (1_500, "1.5µs"),
            (7, "7ns"),
        ] {
            assert_eq!(go_duration(ns), s);
        }
    }
}
