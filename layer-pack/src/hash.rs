//! sha256 helpers.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of everything `r` yields.
pub fn digest_of<R: Read>(mut r: R) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// `sha256:<hex>` of the uncompressed content of a layer blob (gzip, zstd or plain, detected).
pub fn diff_id_of<R: Read>(blob: R) -> io::Result<String> {
    let _ = blob;
    Err(io::Error::other("not implemented yet"))
}
