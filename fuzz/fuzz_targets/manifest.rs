//! The documents a registry sends: image-store's index, manifest and image config types,
//! platform selection from an index, the `WWW-Authenticate` challenge parser, and
//! remfile-plan's base config reader. Never a panic; a document that parses has a canonical
//! JSON form that parses back to the same document and is a fixed point.
#![no_main]

use image_store::registry::{is_attestation, parse_challenges, platform_matches, select_manifest};
use image_store::{ImageConfig, Index, Manifest, Platform, canonical_json};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
) -> Option<T> {
    let doc: T = serde_json::from_slice(data).ok()?;
    let canon = canonical_json(&doc).expect("a parsed document serialises");
    let back: T = serde_json::from_slice(&canon)
        .unwrap_or_else(|e| panic!("canonical form does not parse: {e}"));
    assert_eq!(back, doc, "canonical form names another document");
    assert_eq!(
        canonical_json(&back).expect("serialises"),
        canon,
        "canonical form is not a fixed point"
    );
    Some(doc)
}

const PLATFORMS: [&str; 6] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm64/v8",
    "linux/arm/v7",
    "windows/amd64",
    "linux/s390x",
];

fuzz_target!(|data: &[u8]| {
    if let Some(index) = round_trip::<Index>(data) {
        for p in PLATFORMS {
            let want = Platform::parse(p).expect("a valid platform");
            if let Some(d) = select_manifest(&index, &want) {
                assert!(!is_attestation(d), "an attestation was selected for {p}");
                if let Some(have) = &d.platform {
                    assert!(platform_matches(&want, have), "{p} selected {have:?}");
                }
            }
        }
    }
    let _ = round_trip::<Manifest>(data);
    let _ = round_trip::<ImageConfig>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        for c in parse_challenges(text) {
            let _ = c.param("realm");
        }
        if let Ok(p) = Platform::parse(text) {
            assert!(platform_matches(&p, &p));
        }
        let _ = remfile_plan::Platform::parse(text);
        if let Ok(cfg) = remfile_plan::ImageConfig::from_oci_json(text) {
            let _ = cfg.to_oci();
        }
    }
});
