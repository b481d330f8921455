//! Content hashes as they appear in events, proposals and blobs: `sha256:<hex>`.

use sha2::{Digest, Sha256};

/// `sha256:<lowercase hex>` of the bytes.
pub fn content_hash(bytes: &[u8]) -> String {
    named(&Sha256::digest(bytes))
}

/// [`content_hash`] of bytes given piece by piece (a file too large to hold at once).
#[derive(Default)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> String {
        named(&self.0.finalize())
    }

    /// The digest itself, 32 bytes (`named` writes it as a hash is shown).
    pub fn finish_bytes(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// A digest as hashes are written: `sha256:<lowercase hex>`.
pub fn named(digest: &[u8]) -> String {
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for &byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

/// The hash of a value's canonical JSON form (struct fields in declaration order, maps sorted).
/// A value that cannot be serialised is an error, never the hash of nothing.
pub fn json_hash<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_vec(value).map(|bytes| content_hash(&bytes))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_of_empty_input_is_the_known_sha256() {
        assert_eq!(
            content_hash(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut pieces = ContentHasher::default();
        pieces.update(b"hel");
        pieces.update(b"lo");
        assert_eq!(pieces.finish(), content_hash(b"hello"));
    }
}
