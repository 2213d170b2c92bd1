//! Choosing one image manifest from an index or a Docker manifest list.

use crate::oci::{Descriptor, Index, Platform, is_index_media_type};

/// The annotation BuildKit puts on attestation manifests in an index.
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// Whether a descriptor in an index is an attestation (SBOM/provenance) manifest, which is not
/// an image to run.
pub fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .get(ANNOTATION_REFERENCE_TYPE)
        .is_some_and(|v| v == "attestation-manifest")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

fn normalise_variant(p: &Platform) -> Option<&str> {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        // arm64 without a variant is v8
        ("arm64", None | Some("")) => Some("v8"),
        (_, Some("")) => None,
        (_, v) => v,
    }
}

/// Whether `have` satisfies `want`: same os and architecture, and the same variant when `want`
/// names one (`arm64` with no variant counts as `v8`).
pub fn platform_matches(want: &Platform, have: &Platform) -> bool {
    if want.os != have.os || want.architecture != have.architecture {
        return false;
    }
    match (normalise_variant(want), normalise_variant(have)) {
        (None, _) => true,
        (Some(w), Some(h)) => w == h,
        (Some(_), None) => false,
    }
}

/// Picks the manifest for `want` from an index: attestations skipped; an exact variant match
/// preferred over a variant-less entry. A nested index (no platform, or a matching one) is
/// returned as is so the caller can descend into it.
pub fn select_manifest<'i>(index: &'i Index, want: &Platform) -> Option<&'i Descriptor> {
    let candidates = index.manifests.iter().filter(|d| !is_attestation(d));
    let mut best: Option<(u8, &Descriptor)> = None;
    for d in candidates {
        let rank = match &d.platform {
            Some(p) if platform_matches(want, p) => {
                if normalise_variant(p) == normalise_variant(want) {
                    3
                } else {
                    2
                }
            }
            // a nested index without platform: descend if nothing better
            None if is_index_media_type(&d.media_type) => 1,
            _ => continue,
        };
        if best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, d));
        }
    }
    best.map(|(_, d)| d)
}

/// `os/arch[/variant]` of a platform.
pub(crate) fn platform_string(p: &Platform) -> String {
    match p.variant.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::oci::{MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};

    fn desc(p: Option<&str>, tag: &str) -> Descriptor {
        let mut d = Descriptor::new(MEDIA_TYPE_MANIFEST, Digest::of(tag.as_bytes()), 1);
        d.platform = p.map(|p| Platform::parse(p).unwrap());
        d
    }

    fn index(ds: Vec<Descriptor>) -> Index {
        let mut i = Index::empty();
        i.manifests = ds;
        i
    }

    #[test]
    fn picks_os_arch_variant() {
        let idx = index(vec![
            desc(Some("linux/arm/v6"), "armv6"),
            desc(Some("linux/arm/v7"), "armv7"),
            desc(Some("linux/amd64"), "amd64"),
            desc(Some("linux/arm64/v8"), "arm64"),
            desc(Some("windows/amd64"), "win"),
        ]);
        let pick =
            |p: &str| select_manifest(&idx, &Platform::parse(p).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64"), Some(Digest::of(b"amd64")));
        assert_eq!(pick("linux/arm/v7"), Some(Digest::of(b"armv7")));
        assert_eq!(pick("linux/arm64"), Some(Digest::of(b"arm64")));
        assert_eq!(pick("windows/amd64"), Some(Digest::of(b"win")));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("linux/arm/v5"), None);
    }

    #[test]
    fn skips_attestations_and_descends_nested() {
        let mut att = desc(Some("unknown/unknown"), "att");
        att.annotations.insert(
            ANNOTATION_REFERENCE_TYPE.into(),
            "attestation-manifest".into(),
        );
        let mut att2 = desc(Some("linux/amd64"), "att2");
        att2.annotations.insert(
            ANNOTATION_REFERENCE_TYPE.into(),
            "attestation-manifest".into(),
        );
        let mut nested = Descriptor::new(MEDIA_TYPE_INDEX, Digest::of(b"nested"), 1);
        nested.platform = None;
        let idx = index(vec![att.clone(), att2, nested.clone()]);
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(select_manifest(&idx, &amd).unwrap().digest, nested.digest);
        let idx = index(vec![att, nested, desc(Some("linux/amd64"), "real")]);
        assert_eq!(
            select_manifest(&idx, &amd).unwrap().digest,
            Digest::of(b"real")
        );
    }

    #[test]
    fn exact_variant_preferred_when_none_asked() {
        let idx = index(vec![
            desc(Some("linux/arm64/v9"), "v9"),
            desc(Some("linux/arm64"), "plain"),
        ]);
        // asking for linux/arm64 means v8: v9 does not match
        let d = select_manifest(&idx, &Platform::parse("linux/arm64").unwrap()).unwrap();
        assert_eq!(d.digest, Digest::of(b"plain"));
    }
}
