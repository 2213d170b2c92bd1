//! The streaming pack pipeline: a producer thread formats tar chunks; the calling thread hashes
//! them (diff_id), compresses them and hashes the output (digest) while writing it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::entry::{Entry, write_entries};
use crate::error::PackError;
use crate::gzip::ParallelGzip;
use sha2::{Digest, Sha256};

use crate::hash::{CountWriter, SplitHashWriter, fmt_digest};
use crate::options::{Compression, LayerDescriptor, PackOptions};
use crate::queue::{Sender, bounded};
use crate::tarw::Chunker;
use crate::walk::walk;
use crate::zstdw::ZstdSink;

/// Packs the tree at `dir` (its contents; `dir` itself is the layer root) into `out`.
pub fn pack_dir<W: Write>(
    dir: &Path,
    opts: &PackOptions,
    out: W,
) -> Result<LayerDescriptor, PackError> {
    run(|c| walk(dir, opts, c), opts, out)
}

/// Packs `dir` into `blobs_sha256_dir/<hex of digest>`: streams into a temporary file in that
/// directory, fsyncs it, and renames it (an existing blob with that name is kept).
pub fn pack_to_blob_dir(
    dir: &Path,
    opts: &PackOptions,
    blobs_sha256_dir: &Path,
) -> Result<LayerDescriptor, PackError> {
    to_blob_dir(blobs_sha256_dir, |f| pack_dir(dir, opts, f))
}

/// Packs explicit entries (any order; sorted here, see [`Entry`]) into `out`.
pub fn pack_entries<W: Write>(
    entries: impl IntoIterator<Item = Entry>,
    opts: &PackOptions,
    out: W,
) -> Result<LayerDescriptor, PackError> {
    let entries: Vec<Entry> = entries.into_iter().collect();
    run(move |c| write_entries(entries, opts, c), opts, out)
}

/// [`pack_entries`] into `blobs_sha256_dir/<hex of digest>` like [`pack_to_blob_dir`].
pub fn pack_entries_to_blob_dir(
    entries: impl IntoIterator<Item = Entry>,
    opts: &PackOptions,
    blobs_sha256_dir: &Path,
) -> Result<LayerDescriptor, PackError> {
    to_blob_dir(blobs_sha256_dir, |f| pack_entries(entries, opts, f))
}

fn werr(path: &Path) -> impl FnOnce(io::Error) -> PackError + '_ {
    move |source| PackError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn to_blob_dir(
    blobs: &Path,
    pack: impl FnOnce(&mut io::BufWriter<&File>) -> Result<LayerDescriptor, PackError>,
) -> Result<LayerDescriptor, PackError> {
    fs::create_dir_all(blobs).map_err(werr(blobs))?;
    let tmp = tempfile::Builder::new()
        .prefix(".layer-pack-")
        .tempfile_in(blobs)
        .map_err(werr(blobs))?;
    let desc = {
        let mut w = io::BufWriter::with_capacity(1024 * 1024, tmp.as_file());
        let d = pack(&mut w)?;
        w.flush().map_err(werr(tmp.path()))?;
        d
    };
    // a blob is readable by all, like the store's own (the temp file was made 0600)
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(werr(tmp.path()))?;
    tmp.as_file().sync_all().map_err(werr(tmp.path()))?;
    let hex = desc.digest.strip_prefix("sha256:").unwrap_or(&desc.digest);
    let target: PathBuf = blobs.join(hex);
    if target.exists() {
        return Ok(desc);
    }
    tmp.persist(&target).map_err(|e| PackError::Write {
        path: target.clone(),
        source: e.error,
    })?;
    if let Ok(d) = File::open(blobs) {
        let _ = d.sync_all();
    }
    Ok(desc)
}

/// The compressing sink on the calling thread.
enum Sink<'scope, W: Write> {
    None(CountWriter<W>),
    Gzip(ParallelGzip<SplitHashWriter<'scope, W>>),
    Zstd(ZstdSink<'scope, W>),
}

fn threads(opts: &PackOptions) -> usize {
    opts.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
        .max(1)
}

impl<'scope, W: Write> Sink<'scope, W> {
    /// `recycle` takes back tar chunks the sink consumed.
    fn new<'env>(
        opts: &PackOptions,
        out: W,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        recycle: &Sender<Vec<u8>>,
    ) -> Result<Self, PackError> {
        let werr = |source| PackError::Write {
            path: "<output>".into(),
            source,
        };
        Ok(match opts.compression {
            Compression::None => Sink::None(CountWriter::new(out)),
            Compression::Gzip => {
                let level = opts.level.unwrap_or(6);
                if !(0..=9).contains(&level) {
                    return Err(PackError::Options(format!(
                        "gzip level {level} is not in 0..=9"
                    )));
                }
                let out = SplitHashWriter::new(scope, out, None);
                Sink::Gzip(ParallelGzip::new(out, level as u32, threads(opts)).map_err(werr)?)
            }
            Compression::Zstd => {
                let level = opts.level.unwrap_or(3);
                if !(1..=19).contains(&level) {
                    return Err(PackError::Options(format!(
                        "zstd level {level} is not in 1..=19"
                    )));
                }
                let out = SplitHashWriter::new(scope, out, Some(recycle.clone()));
                Sink::Zstd(ZstdSink::new(out, level, threads(opts)).map_err(werr)?)
            }
        })
    }

    /// Writes one tar chunk; gives it back for reuse unless the sink kept it.
    fn write_chunk(&mut self, chunk: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        match self {
            Sink::None(w) => w.write_all(&chunk)?,
            Sink::Gzip(g) => g.write_all(&chunk)?,
            Sink::Zstd(z) => return z.write_chunk(chunk),
        }
        Ok(Some(chunk))
    }

    /// Ends the stream: the output sha256 (`None` when not compressed) and the output size.
    fn finish(self) -> io::Result<(Option<Sha256>, u64)> {
        let (_, h, count) = match self {
            Sink::None(mut w) => {
                w.flush()?;
                return Ok((None, w.count));
            }
            Sink::Gzip(g) => g.finish()?.finish()?,
            Sink::Zstd(z) => z.finish()?,
        };
        Ok((Some(h), count))
    }
}

fn run<W: Write>(
    produce: impl FnOnce(&mut Chunker) -> Result<(), PackError> + Send,
    opts: &PackOptions,
    out: W,
) -> Result<LayerDescriptor, PackError> {
    // Up to 6 MiB of tar in flight absorbs scheduling hiccups between the threads while keeping
    // peak RSS well under 64 MiB (every buffer is recycled).
    let (tx, hash_rx) = bounded::<Vec<u8>>(3);
    let (hash_tx, rx) = bounded::<Vec<u8>>(3);
    let (free_tx, free_rx) = bounded::<Vec<u8>>(4);
    std::thread::scope(|s| {
        let mut sink = Sink::new(opts, out, s, &free_tx)?;
        let producer = s.spawn(move || {
            let mut c = Chunker::new(tx, free_rx);
            produce(&mut c)?;
            c.finish()
        });
        // The diff_id is hashed on its own thread, so reading files and hashing them overlap.
        let hasher = s.spawn(move || {
            let mut diff = Sha256::new();
            while let Some(chunk) = hash_rx.recv() {
                diff.update(&chunk);
                if hash_tx.send(chunk).is_err() {
                    break;
                }
            }
            diff
        });
        let consumed = (|| {
            while let Some(chunk) = rx.recv() {
                if let Some(chunk) = sink.write_chunk(chunk)? {
                    let _ = free_tx.try_send(chunk);
                }
            }
            Ok::<_, io::Error>(())
        })();
        drop(rx);
        let tar_result = producer
            .join()
            .unwrap_or_else(|_| Err(PackError::Options("tar producer panicked".into())));
        let diff = hasher
            .join()
            .map_err(|_| PackError::Options("tar hasher panicked".into()))?;
        let werr = |source| PackError::Write {
            path: "<output>".into(),
            source,
        };
        match (tar_result, consumed) {
            (Err(e), Ok(())) => Err(e),
            (Err(e), Err(_)) if !matches!(&e, PackError::Write { source, .. } if source.kind() == io::ErrorKind::BrokenPipe) => {
                Err(e)
            }
            (_, Err(e)) => Err(werr(e)),
            (Ok(()), Ok(())) => {
                let (out_hash, size) = sink.finish().map_err(werr)?;
                let diff_id = fmt_digest(diff);
                let digest = out_hash.map_or_else(|| diff_id.clone(), fmt_digest);
                Ok(LayerDescriptor {
                    version: 1,
                    media_type: opts.compression.media_type().to_string(),
                    digest,
                    diff_id,
                    size,
                })
            }
        }
    })
}
