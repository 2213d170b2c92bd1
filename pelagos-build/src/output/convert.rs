//! An image in another form for an output: layers recompressed (`compression=`,
//! `compression-level=`) and OCI or Docker media types (`oci-mediatypes=`). The converted
//! manifest (and any recompressed layer) is written to the store untagged; the stored image
//! itself is never changed.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use image_store::registry::{LayerCompression, recompress_layer};
use image_store::{
    Descriptor, Digest, HashingReader, ImageRecord, MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_CONFIG,
    MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_MANIFEST, Manifest,
    Reference, Store,
};

use crate::error::BuildError;

/// Docker's uncompressed layer media type.
const MEDIA_TYPE_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// How the output wants the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Form {
    /// Layer compression (`None`: as stored).
    pub compression: Option<LayerCompression>,
    /// Compression level (`None`: gzip 6, zstd 3, as image-store recompresses).
    pub level: Option<u32>,
    /// OCI (true) or Docker media types.
    pub oci_types: bool,
}

fn layer_media_type(c: LayerCompression, oci: bool) -> &'static str {
    match (c, oci) {
        (c, true) => c.oci_media_type(),
        (LayerCompression::None, false) => MEDIA_TYPE_DOCKER_LAYER_TAR,
        // zstd never gets here with Docker types (the spec turns OCI types on)
        (_, false) => MEDIA_TYPE_DOCKER_LAYER_GZIP,
    }
}

fn fail(what: &str, message: impl std::fmt::Display) -> BuildError {
    BuildError::Output {
        dest: what.into(),
        message: message.to_string(),
    }
}

/// `img` in `form`: the same record when nothing changes, else a new manifest in the store.
pub fn convert(store: &Store, img: &ImageRecord, form: Form) -> Result<ImageRecord, BuildError> {
    let mut layers = Vec::new();
    for (layer, diff_id) in img.layers()? {
        let current = LayerCompression::of_media_type(&layer.media_type).ok_or_else(|| {
            fail(
                &layer.digest.to_string(),
                format!("layer media type {} cannot be converted", layer.media_type),
            )
        })?;
        let want = form.compression.unwrap_or(current);
        let mut d = match (want == current, form.level) {
            (true, None) => layer.clone(),
            (false, None) => {
                recompress_layer(store, &layer, &diff_id, want)
                    .map_err(|e| fail(&layer.digest.to_string(), e))?
                    .0
            }
            (_, Some(level)) => recompress_at(store, &layer, current, &diff_id, want, level)?,
        };
        d.media_type = layer_media_type(want, form.oci_types).to_string();
        d.platform = None;
        layers.push(d);
    }
    let (manifest_mt, config_mt) = if form.oci_types {
        (MEDIA_TYPE_MANIFEST, MEDIA_TYPE_CONFIG)
    } else {
        (MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_CONFIG)
    };
    let mut config = img.manifest.config.clone();
    config.media_type = config_mt.to_string();
    let stored_mt = img
        .manifest
        .media_type
        .as_deref()
        .unwrap_or(MEDIA_TYPE_MANIFEST);
    if stored_mt == manifest_mt && img.manifest.config == config && img.manifest.layers == layers {
        return Ok(img.clone());
    }
    let m = Manifest {
        schema_version: 2,
        media_type: Some(manifest_mt.to_string()),
        config,
        layers,
        annotations: if form.oci_types {
            img.manifest.annotations.clone()
        } else {
            BTreeMap::new()
        },
        extra: BTreeMap::new(),
    };
    let bytes = image_store::canonical_json(&m)?;
    let info = store.put_blob_bytes(&bytes)?;
    let by_digest = Reference::parse(&format!("pelagos.invalid/converted@{}", info.digest))
        .map_err(image_store::StoreError::from)?;
    let mut out = store
        .resolve(&by_digest)?
        .ok_or_else(|| BuildError::ImageNotFound(info.digest.to_string()))?;
    out.reference.clone_from(&img.reference);
    Ok(out)
}

/// Recompresses a layer at `level` (no cache: the store's remembered recompressions are at the
/// default levels), checking the content against its diff_id.
fn recompress_at(
    store: &Store,
    layer: &Descriptor,
    current: LayerCompression,
    diff_id: &Digest,
    want: LayerCompression,
    level: u32,
) -> Result<Descriptor, BuildError> {
    let what = layer.digest.to_string();
    let blob = std::io::BufReader::new(store.open_blob(&layer.digest)?);
    let dec: Box<dyn Read> = match current {
        LayerCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(blob)),
        LayerCompression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(blob).map_err(|e| fail(&what, e))?)
        }
        LayerCompression::None => Box::new(blob),
    };
    let mut hashing = HashingReader::new(dec);
    let mut w = store.blob_writer()?;
    let copied = match want {
        LayerCompression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(&mut w, flate2::Compression::new(level));
            std::io::copy(&mut hashing, &mut e).and_then(|_| e.finish().map(|_| ()))
        }
        LayerCompression::Zstd => {
            let level = i32::try_from(level).unwrap_or(3);
            zstd::stream::write::Encoder::new(&mut w, level).and_then(|mut e| {
                std::io::copy(&mut hashing, &mut e)?;
                e.finish().map(|_| ())
            })
        }
        LayerCompression::None => std::io::copy(&mut hashing, &mut w).map(|_| ()),
    };
    copied
        .and_then(|()| w.flush())
        .map_err(|e| fail(&what, format!("recompression failed: {e}")))?;
    let (actual, _) = hashing.finish();
    if actual != *diff_id {
        return Err(fail(
            &what,
            format!("content is {actual}, not the diff_id {diff_id}"),
        ));
    }
    let info = w.commit(None)?;
    Ok(Descriptor::new(
        want.oci_media_type(),
        info.digest,
        info.size,
    ))
}
