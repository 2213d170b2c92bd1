//! `layer-pack`: deterministic, streaming OCI layers and safe layer application.
//!
//! Packing turns a directory (a plain tree or an overlayfs upper dir) or an explicit list of
//! [`Entry`] values into an OCI layer blob in one streaming pass:
//! walk → tar → sha256 (diff_id) → compress → sha256 (digest) → writer. Memory stays bounded
//! whatever the layer size. The output depends only on the tree's content (paths, types, modes,
//! owners, whole-second mtimes, allowed xattrs, link structure), never on atimes, ctimes, inode
//! numbers, readdir order or the number of compression threads.
//!
//! Unpacking applies a layer (gzip, zstd or plain tar, detected from the first bytes) onto a
//! directory, either flattening whiteouts ([`UnpackFormat::Plain`]) or turning them into overlayfs
//! whiteouts ([`UnpackFormat::Overlay`]). Hostile archives are refused, naming the entry.
//!
//! Entry points: [`pack_dir`], [`pack_to_blob_dir`], [`pack_entries`], [`pack_entries_to_blob_dir`],
//! [`unpack`], [`unpack_path`], [`diff_id_of`], [`digest_of`].

mod apply;
pub mod cli;
mod decode;
mod entry;
mod error;
mod gzip;
mod hash;
mod options;
mod pack;
mod queue;
mod tarread;
mod tarw;
#[cfg(test)]
mod testdata;
mod unpack;
mod walk;
mod zstdw;

pub use entry::{Entry, EntrySource};
pub use error::{PackError, UnpackError};
pub use hash::{diff_id_of, digest_of};
pub use options::{Compression, IdMap, IdRange, LayerDescriptor, PackOptions};
pub use pack::{pack_dir, pack_entries, pack_entries_to_blob_dir, pack_to_blob_dir};
pub use unpack::{UnpackFormat, UnpackOptions, UnpackReport, unpack, unpack_path};
