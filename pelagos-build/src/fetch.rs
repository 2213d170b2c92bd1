//! ADD of URLs: an HTTP(S) download streamed to a file while hashing, verified against
//! `--checksum`, with the file name taken from the URL and the mtime from `Last-Modified`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A download failure.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not http(s).
    #[error("unsupported URL {0:?} (only http and https)")]
    Scheme(String),
    /// The request failed.
    #[error("GET {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--checksum` is malformed.
    #[error("invalid --checksum {0:?}: expected sha256:<64 hex digits>")]
    ChecksumSyntax(String),
    /// The content does not match `--checksum`.
    #[error("GET {url}: checksum mismatch: expected {expected}, got {actual}")]
    Checksum {
        /// The URL.
        url: String,
        /// The expected digest.
        expected: String,
        /// The digest of what was received.
        actual: String,
    },
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// `Last-Modified` as Unix seconds, if the server sent one.
    pub mtime: Option<i64>,
    /// The file name for a directory destination (last URL path segment).
    pub file_name: String,
}

/// How long connecting to a server may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a server may take to start its response (a server that accepts and never answers
/// fails the download then).
pub const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Whether an ADD source is a URL.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The name BuildKit's Dockerfile frontend gives an ADD download: Go's `path.Base` of the
/// URL's decoded path (query and fragment removed), or `__unnamed__` when that is empty, `/`,
/// `.` or `..`, or when the path has an invalid `%` escape (Go's `url.Parse` fails then).
pub fn file_name(url: &str) -> String {
    const UNNAMED: &str = "__unnamed__";
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let raw = rest.split(['?', '#']).next().unwrap_or("");
    let raw = raw.find('/').map_or("", |i| raw.get(i..).unwrap_or(""));
    let Some(path) = percent_decode(raw) else {
        return UNNAMED.to_string();
    };
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." && base != ".." => base.to_string(),
        _ => UNNAMED.to_string(),
    }
}

/// `%XX` escapes decoded (invalid UTF-8 replaced); `None` for a malformed escape.
fn percent_decode(s: &str) -> Option<String> {
    percent_decode_bytes(s, false).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The bytes of `s` with its `%XX` escapes decoded, and a literal `+` read as a space when
/// `plus_is_space` (form encoding, as Go's `url.ParseQuery`); `None` for a malformed escape.
pub(crate) fn percent_decode_bytes(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(if plus_is_space && c == b'+' { b' ' } else { c });
            i += 1;
        }
    }
    Some(out)
}

/// Parses an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`).
pub fn parse_http_date(s: &str) -> Option<i64> {
    let fmt = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    time::PrimitiveDateTime::parse(s.trim(), &fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Validates a `--checksum` value.
pub fn parse_checksum(s: &str) -> Result<String, FetchError> {
    match s.split_once(':') {
        Some(("sha256", h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("sha256:{}", h.to_ascii_lowercase()))
        }
        _ => Err(FetchError::ChecksumSyntax(s.to_string())),
    }
}

/// Downloads `url` into `dest`; with `checksum` the content must match it.
pub fn download(url: &str, dest: &Path, checksum: Option<&str>) -> Result<Download, FetchError> {
    if !is_url(url) {
        return Err(FetchError::Scheme(crate::git::redact(url)));
    }
    let expected = checksum.map(parse_checksum).transpose()?;
    // credentials of the URL go to the server (basic auth) only, never into a message
    let http = |message: String| FetchError::Http {
        url: crate::git::redact(url),
        message: crate::git::redact(&message),
    };
    let resp = ureq::get(url)
        .config()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(RESPONSE_TIMEOUT))
        .build()
        .call()
        .map_err(|e| http(e.to_string()))?;
    let mtime = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let mut body = resp.into_body().into_reader();
    let io = |source| FetchError::Io {
        path: dest.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(dest).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut size = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(http(e.to_string())),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        h.update(chunk);
        f.write_all(chunk).map_err(io)?;
        size += n as u64;
    }
    f.sync_all().map_err(io)?;
    let digest = format!("sha256:{}", hex::encode(h.finalize()));
    if let Some(exp) = expected
        && exp != digest
    {
        let _ = std::fs::remove_file(dest);
        return Err(FetchError::Checksum {
            url: crate::git::redact(url),
            expected: exp,
            actual: digest,
        });
    }
    Ok(Download {
        digest,
        size,
        mtime,
        file_name: file_name(url),
    })
}

/// A tiny HTTP/1.0 server on 127.0.0.1 for tests: serves `files` (path → body) until dropped.
#[doc(hidden)]
pub mod testserver {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A running server.
    #[derive(Debug)]
    pub struct Server {
        /// `http://127.0.0.1:PORT`.
        pub base: String,
        stop: Arc<AtomicBool>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = std::net::TcpStream::connect(self.base.trim_start_matches("http://"));
        }
    }

    /// Starts a server for `files`.
    pub fn serve<S: std::hash::BuildHasher + Send + 'static>(
        files: HashMap<String, Vec<u8>, S>,
    ) -> std::io::Result<Server> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", l.local_addr()?);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let mut line = String::new();
                let mut r = BufReader::new(match c.try_clone() {
                    Ok(x) => x,
                    Err(_) => continue,
                });
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" || h == "\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let _ = match files.get(&path) {
                    Some(body) => c
                        .write_all(format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n", body.len()).as_bytes())
                        .and_then(|()| c.write_all(body)),
                    None => c.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                };
            }
        });
        Ok(Server { base, stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_dates_checksums() {
        assert_eq!(file_name("http://h:1/a/b/file.tar.gz?x=1#f"), "file.tar.gz");
        assert_eq!(file_name("http://h:1/"), "__unnamed__");
        assert_eq!(file_name("http://h:1"), "__unnamed__");
        assert_eq!(file_name("http://h:1/a/."), "__unnamed__");
        assert_eq!(file_name("http://h:1/dir/"), "dir");
        assert_eq!(file_name("http://h:1/sub/%67.txt?q=%zz"), "g.txt");
        assert_eq!(file_name("http://h:1/a%2Fb"), "b");
        assert_eq!(file_name("http://h:1/a+b%2B%ff"), "a+b+\u{fffd}");
        assert_eq!(file_name("http://h:1/bad%zz"), "__unnamed__");
        assert_eq!(file_name("http://h:1/trunc%6"), "__unnamed__");
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum("md5:00").is_err());
        assert!(is_url("https://x") && !is_url("ftp://x") && !is_url("file.txt"));
    }

    #[test]
    fn downloads_from_a_local_server_and_verifies() {
        let body = b"hello over http\n".to_vec();
        let srv = testserver::serve([("/f.txt".to_string(), body.clone())].into()).unwrap();
        let d = tempfile::tempdir().unwrap();
        let good = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        let r = download(
            &format!("{}/f.txt", srv.base),
            &d.path().join("a"),
            Some(&good),
        )
        .unwrap();
        assert_eq!(r.digest, good);
        assert_eq!(r.size, body.len() as u64);
        assert_eq!(r.mtime, Some(1_445_412_480));
        assert_eq!(std::fs::read(d.path().join("a")).unwrap(), body);
        let bad = format!("sha256:{}", "0".repeat(64));
        let e = download(
            &format!("{}/f.txt", srv.base),
            &d.path().join("b"),
            Some(&bad),
        )
        .unwrap_err();
        assert!(matches!(e, FetchError::Checksum { .. }));
        assert!(
            !d.path().join("b").exists(),
            "a mismatching download is removed"
        );
        assert!(matches!(
            download(&format!("{}/missing", srv.base), &d.path().join("c"), None),
            Err(FetchError::Http { .. })
        ));
        // credentials reach the server only, never a message
        let with_creds = srv.base.replace("http://", "http://u:s3cret@");
        let e = download(&format!("{with_creds}/missing"), &d.path().join("c"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://xxxxx:xxxxx@127.0.0.1"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
