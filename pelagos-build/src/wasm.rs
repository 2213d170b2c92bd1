//! WebAssembly images: when the final layer of an image is exactly one WebAssembly file (COPY of
//! a single module or component, by magic bytes), that layer is stored as the raw `.wasm` bytes
//! with the Wasm layer media type (`application/wasm` for a core module, the bytecodealliance
//! component layer type for a component), as Wasm runtimes (runwasi, the CNCF Wasm OCI artifact
//! layout) expect; the blob is never changed after its digest is taken and its diff_id is that
//! digest.

use std::io::Read;
use std::path::Path;

/// Media type of a layer holding one core WebAssembly module.
pub const MEDIA_TYPE_WASM_MODULE: &str = "application/wasm";
/// Media type of a layer holding one WebAssembly component.
pub const MEDIA_TYPE_WASM_COMPONENT: &str =
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

/// The Wasm layer media type for a file starting with `head`, or `None` when it is not Wasm.
pub fn media_type(head: &[u8]) -> Option<&'static str> {
    match head.get(..8)? {
        [0, b'a', b's', b'm', 1, 0, 0, 0] => Some(MEDIA_TYPE_WASM_MODULE),
        [0, b'a', b's', b'm', _, _, 1, 0] => Some(MEDIA_TYPE_WASM_COMPONENT),
        _ => None,
    }
}

/// The Wasm media type of the file at `path` (read errors: not Wasm).
pub fn media_type_of(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 8];
    let mut f = std::fs::File::open(path).ok()?;
    f.read_exact(&mut head).ok()?;
    media_type(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(
            media_type(b"\0asm\x01\0\0\0rest"),
            Some(MEDIA_TYPE_WASM_MODULE)
        );
        assert_eq!(
            media_type(b"\0asm\x0d\0\x01\0"),
            Some(MEDIA_TYPE_WASM_COMPONENT)
        );
        assert_eq!(media_type(b"\0asm\x01\0"), None);
        assert_eq!(media_type(b"\x7fELF\x02\x01\x01\0"), None);
    }
}
