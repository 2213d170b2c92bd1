//! `--output`: OCI layout (tar or directory), docker archive, local directory, rootfs tar.

use image_store::{Descriptor, Store};

use crate::build::BuildResult;
use crate::cli::{OutputKind, OutputSpec};
use crate::error::BuildError;

/// Writes every requested output of the built image.
pub fn write_outputs(store: &Store, outputs: &[OutputSpec], manifest: &Descriptor, result: &BuildResult, tags: &[String]) -> Result<(), BuildError> {
    let _ = (store, manifest, result, tags);
    for o in outputs {
        let _ = o.kind == OutputKind::Oci;
        return Err(BuildError::Output { dest: o.dest.clone(), message: "outputs are not supported yet".into() });
    }
    Ok(())
}
