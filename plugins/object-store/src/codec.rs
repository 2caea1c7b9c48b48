//! The bytes of a stored document: as sent, or gzip. Reading detects gzip by its magic bytes
//! (`1f 8b`, which no JSON text starts with), not by the option, so a storage can switch
//! compression on or off without rewriting what it already holds, and an object a store
//! decompressed on the way out (GCS does for `Content-Encoding: gzip`) reads the same.

use std::io::{self, Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::options::Compression;

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The bytes to store for a document.
pub(crate) fn encode(json: &[u8], compression: Compression) -> io::Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(json.to_vec()),
        Compression::Gzip => {
            let mut encoder = GzEncoder::new(
                Vec::with_capacity(json.len() / 4 + 64),
                flate2::Compression::default(),
            );
            encoder.write_all(json)?;
            encoder.finish()
        }
    }
}

/// The document from stored bytes, decompressing gzip.
pub(crate) fn decode(stored: Vec<u8>) -> io::Result<Vec<u8>> {
    if !stored.starts_with(&GZIP_MAGIC) {
        return Ok(stored);
    }
    let mut json = Vec::with_capacity(stored.len() * 4);
    GzDecoder::new(stored.as_slice()).read_to_end(&mut json)?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_ways() {
        let json = br#"{"uuid":"x","text":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;
        let plain = encode(json, Compression::None).unwrap();
        assert_eq!(plain, json);
        assert_eq!(decode(plain).unwrap(), json);
        let gz = encode(json, Compression::Gzip).unwrap();
        assert!(gz.starts_with(&GZIP_MAGIC));
        assert!(gz.len() < json.len());
        assert_eq!(decode(gz).unwrap(), json);
    }

    #[test]
    fn damaged_gzip_is_an_error() {
        let mut gz = encode(b"{\"a\":1}", Compression::Gzip).unwrap();
        gz.truncate(8);
        assert!(decode(gz).is_err());
    }
}
