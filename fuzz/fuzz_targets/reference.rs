//! Image references and digests on any string: image-store's `Reference::parse` and
//! `Digest::parse`, remfile-plan's `reference::normalize`. Never a panic; normalisation is
//! idempotent (the normalised and the familiar forms parse back to the same reference), and
//! when the planner accepts a reference that the store accepts too, both name the same image.
#![no_main]

use image_store::{Digest, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.as_str(), s);
        assert_eq!(d.hex().len(), 64);
        assert_eq!(d.short().len(), 12);
        assert_eq!(s.parse::<Digest>().ok(), Some(d));
    }
    let store = Reference::parse(s);
    if let Ok(r) = &store {
        let shown = r.to_string();
        let again = Reference::parse(&shown)
            .unwrap_or_else(|e| panic!("normalised {shown:?} of {s:?} does not parse: {e}"));
        assert_eq!(&again, r, "normalisation of {s:?} is not idempotent");
        let familiar = r.familiar();
        let back = Reference::parse(&familiar)
            .unwrap_or_else(|e| panic!("familiar {familiar:?} of {s:?} does not parse: {e}"));
        assert_eq!(&back, r, "familiar form of {s:?} names another image");
        assert_eq!(r.name(), format!("{}/{}", r.domain(), r.path()));
        if let Ok(t) = r.with_tag("v1") {
            assert_eq!(t.tag(), Some("v1"));
        }
        let pinned = r.with_digest(Digest::of(b"x"));
        assert_eq!(
            Reference::parse(&pinned.to_string()).ok(),
            Some(pinned),
            "a pinned reference of {s:?} does not parse back"
        );
    }
    if let Ok(n) = remfile_plan::reference::normalize(s) {
        assert_eq!(
            remfile_plan::reference::normalize(&n).as_deref(),
            Ok(n.as_str()),
            "the planner's normalisation of {s:?} is not idempotent"
        );
        if let Ok(r) = &store {
            assert_eq!(
                Reference::parse(&n).as_ref(),
                Ok(r),
                "the planner's {n:?} and the store's {r} of {s:?} differ"
            );
        }
    }
});
