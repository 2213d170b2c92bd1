//! Blob downloads: streamed into the store while hashed, resumed with `Range` after a broken
//! connection, committed only when digest and size match; and the bounded parallel loop that
//! pull, push and the remote cache run their blobs through.

use std::fs;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::client::{Client, Req, Scope, header};
use super::error::{RegistryError, Result};
use super::progress::Bar;
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::store::Store;

/// Whether a blob is present with the right size; protects it from gc while the store handle
/// lives.
fn blob_present(store: &Store, d: &Digest, size: u64) -> Result<bool> {
    Ok(store.protected(&[d], || {
        Ok(fs::metadata(store.blob_path(d)).is_ok_and(|m| m.len() == size))
    })?)
}

/// Downloads one blob into the store: streamed into a store temp file while hashed, resumed with
/// `Range` after a broken connection, committed only when digest and size match. Returns the
/// bytes downloaded, `None` when the blob was already present.
pub(crate) fn fetch_blob(
    client: &Client,
    store: &Store,
    repository: &str,
    desc: &Descriptor,
    scopes: &[Scope],
    bar: &Bar,
) -> Result<Option<u64>> {
    if blob_present(store, &desc.digest, desc.size)? {
        bar.set(desc.size);
        bar.finish("exists");
        return Ok(None);
    }
    let url = format!("/v2/{repository}/blobs/{}", desc.digest);
    let mut writer = store.blob_writer()?;
    let mut written = 0u64;
    let mut downloaded = 0u64;
    let mut failures = 0u32;
    let retries = client.options().retries;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let mut req = Req::new("GET", url.clone(), scopes).header("accept-encoding", "identity");
        if written > 0 {
            req = req.header("range", format!("bytes={written}-"));
        }
        let resp = client.send(&req)?;
        match resp.status().as_u16() {
            200 => {
                if written > 0 {
                    // the registry ignored the range: start again
                    writer = store.blob_writer()?;
                    written = 0;
                    bar.set(0);
                }
            }
            206 => {
                let ok = header(&resp, "content-range")
                    .is_some_and(|r| r.starts_with(&format!("bytes {written}-")));
                if !ok {
                    writer = store.blob_writer()?;
                    written = 0;
                    bar.set(0);
                    drop(resp);
                    failures += 1;
                    if failures > retries {
                        return Err(RegistryError::invalid(
                            format!("blob {}", desc.digest),
                            "the registry answered a range request with another range",
                        ));
                    }
                    continue;
                }
            }
            404 => {
                return Err(RegistryError::NotFound {
                    what: format!("blob {} in {repository}", desc.digest),
                });
            }
            _ => return Err(client.status_error(&req, resp)),
        }
        let mut body = resp.into_body().into_reader();
        let broken = loop {
            match body.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => {
                    written += n as u64;
                    downloaded += n as u64;
                    if written > desc.size {
                        return Err(RegistryError::Store(crate::StoreError::SizeMismatch {
                            name: desc.digest.to_string(),
                            expected: desc.size,
                            actual: written,
                        }));
                    }
                    let chunk = buf.get(..n).unwrap_or_default();
                    writer.write_all(chunk).map_err(|e| {
                        RegistryError::Store(crate::StoreError::io("write", store.tmp_dir(), e))
                    })?;
                    bar.inc(n as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        match broken {
            None if written >= desc.size => break,
            None => {
                // a clean end before the declared size: a truncated answer
                failures += 1;
                if failures > retries {
                    return Err(RegistryError::invalid(
                        format!("blob {}", desc.digest),
                        format!(
                            "truncated: the registry sent {written} of {} bytes",
                            desc.size
                        ),
                    ));
                }
            }
            Some(e) => {
                failures += 1;
                if failures > retries {
                    return Err(RegistryError::Transport {
                        method: "GET".into(),
                        url: client.absolute(&url),
                        message: format!("download broken after {written} bytes: {e}"),
                    });
                }
            }
        }
        std::thread::sleep(client.options().backoff.saturating_mul(failures.min(5)));
    }
    writer.commit(Some((&desc.digest, desc.size)))?;
    bar.finish("done");
    Ok(Some(downloaded))
}

/// Runs `f` on every item with at most `n` threads; the first error wins.
pub(crate) fn for_each_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_err: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    if first_err
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .is_some()
                    {
                        return;
                    }
                    let idx = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(idx) else {
                        return;
                    };
                    match work(item) {
                        Ok(r) => {
                            if let Some(slot) = results
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .get_mut(idx)
                            {
                                *slot = Some(r);
                            }
                        }
                        Err(e) => {
                            let mut g = first_err
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            if g.is_none() {
                                *g = Some(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_err
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_runs_all_and_stops_on_error() {
        let items: Vec<u32> = (0..20).collect();
        let out = for_each_parallel(&items, 3, |x| Ok(x * 2)).unwrap();
        assert_eq!(out, (0..20).map(|x| x * 2).collect::<Vec<_>>());
        let err = for_each_parallel(&items, 3, |x| {
            if *x == 7 {
                Err(RegistryError::Usage("seven".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "seven");
    }
}
