//! A tiny HTTP/1.1 server for what a real registry will not do on demand: issue bearer tokens,
//! serve a wrong digest or a truncated body, fail with 503/429, serve nested indexes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many body bytes (after a full Content-Length), then close.
    pub truncate: Option<usize>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            truncate: None,
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

pub struct FakeServer {
    pub ip: String,
    pub port: u16,
    pub log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> FakeServer {
        Self::start_on("127.0.0.1", handler)
    }

    /// Listens on `ip` (an address of this machine), on a free port.
    pub fn start_on(
        ip: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (st, lg) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (h, lg) = (handler.clone(), lg.clone());
                std::thread::spawn(move || serve(conn, &*h, &lg));
            }
        });
        FakeServer {
            ip: ip.to_string(),
            port,
            log,
            stop,
        }
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect((self.ip.as_str(), self.port));
    }
}

fn serve(conn: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return; // e.g. a TLS hello
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return;
    };
    if !line.contains("HTTP/1.") {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body: Vec::new(),
    };
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        let mut body = Vec::new();
        let _ = (&mut r).take(n).read_to_end(&mut body);
        req.body = body;
    }
    log.lock().unwrap().push(req.clone());
    let resp = handler(&req);
    let mut out = conn;
    let mut head = format!("HTTP/1.1 {} X\r\n", resp.status);
    for (k, v) in &resp.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    let _ = write!(
        head,
        "content-length: {}\r\nconnection: close\r\n\r\n",
        resp.body.len()
    );
    let _ = out.write_all(head.as_bytes());
    if req.method != "HEAD" {
        let n = resp
            .truncate
            .unwrap_or(resp.body.len())
            .min(resp.body.len());
        let _ = out.write_all(&resp.body[..n]);
    }
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// Static registry content: manifests by `repo` + tag-or-digest, blobs by digest.
#[derive(Default, Clone)]
pub struct Content {
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    pub blobs: HashMap<String, Vec<u8>>,
}

impl Content {
    /// Adds a manifest under its digest and, when given, a tag.
    pub fn manifest(&mut self, repo: &str, tag: Option<&str>, mt: &str, bytes: &[u8]) -> String {
        let d = image_store::Digest::of(bytes).to_string();
        self.manifests
            .insert(format!("{repo}@{d}"), (mt.to_string(), bytes.to_vec()));
        if let Some(t) = tag {
            self.manifests
                .insert(format!("{repo}@{t}"), (mt.to_string(), bytes.to_vec()));
        }
        d
    }

    pub fn blob(&mut self, bytes: &[u8]) -> String {
        let d = image_store::Digest::of(bytes).to_string();
        self.blobs.insert(d.clone(), bytes.to_vec());
        d
    }

    /// Serves `/v2/`, manifests and blobs (with `Range: bytes=N-`).
    pub fn serve(&self, req: &Request) -> Response {
        let path = req.path.split('?').next().unwrap_or("");
        if path == "/v2/" {
            return Response::new(200, "{}");
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Response::new(404, "");
        };
        if let Some((repo, r)) = rest.rsplit_once("/manifests/") {
            return match self.manifests.get(&format!("{repo}@{r}")) {
                Some((mt, b)) => Response::new(200, b.clone()).header("content-type", mt),
                None => Response::new(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
            };
        }
        if let Some((_, d)) = rest.rsplit_once("/blobs/") {
            let Some(b) = self.blobs.get(d) else {
                return Response::new(404, "");
            };
            if let Some(from) = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse::<usize>().ok())
                && from < b.len()
            {
                return Response::new(206, b[from..].to_vec()).header(
                    "content-range",
                    &format!("bytes {from}-{}/{}", b.len() - 1, b.len()),
                );
            }
            return Response::new(200, b.clone());
        }
        Response::new(404, "")
    }
}
