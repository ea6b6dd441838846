//! Recognising values written by Flink itself: a Java serialization stream (`AC ED 00 05`), raw
//! as in ZooKeeper or base64 as in Kubernetes ConfigMaps. tenure cannot read them and never
//! overwrites or deletes them; the stores report them as [`StoreError::Foreign`](super::StoreError)
//! with the file they point to when it can be found.

const JAVA_MAGIC: [u8; 4] = [0xAC, 0xED, 0x00, 0x05];
/// Base64 of a stream starting with the Java magic (how Flink's Kubernetes backend stores it).
const JAVA_MAGIC_BASE64: &[u8] = b"rO0AB";

/// Whether `bytes` were written by Flink: a Java serialization stream (`AC ED 00 05`), raw or
/// base64-encoded.
pub fn is_foreign(bytes: &[u8]) -> bool {
    bytes.starts_with(&JAVA_MAGIC) || bytes.starts_with(JAVA_MAGIC_BASE64)
}

/// Describes Flink bytes for [`StoreError::Foreign`](super::StoreError::Foreign): their size and, best effort, the file they
/// name (the last string in the stream that starts with `file:` or contains `://`).
pub fn foreign_detail(bytes: &[u8]) -> String {
    let decoded;
    let (stream, form) = if bytes.starts_with(JAVA_MAGIC_BASE64) {
        decoded = base64_decode(bytes);
        (decoded.as_slice(), "base64 Java-serialized")
    } else {
        (bytes, "Java-serialized")
    };
    match last_uri(stream) {
        Some(uri) => format!(
            "{form} Flink state handle, {} bytes, file {uri}",
            bytes.len()
        ),
        None => format!("{form} Flink object, {} bytes", bytes.len()),
    }
}

/// The last `TC_STRING` in a Java serialization stream that looks like a file URI.
fn last_uri(stream: &[u8]) -> Option<String> {
    const TC_STRING: u8 = 0x74;
    let mut found = None;
    let mut i = 0;
    while i < stream.len() {
        let candidate = stream
            .get(i..)
            .and_then(|s| s.split_first())
            .filter(|(tag, _)| **tag == TC_STRING)
            .and_then(|(_, rest)| {
                let (len, rest) = rest.split_first_chunk::<2>()?;
                let len = u16::from_be_bytes(*len) as usize;
                let s = std::str::from_utf8(rest.get(..len)?).ok()?;
                (s.starts_with("file:") || s.contains("://")).then(|| (s.to_owned(), 3 + len))
            });
        match candidate {
            Some((s, consumed)) => {
                found = Some(s);
                i += consumed;
            }
            None => i += 1,
        }
    }
    found
}

/// Decodes standard base64, skipping bytes outside the alphabet; best effort, never fails.
fn base64_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::{Payload, StoreError};

    #[test]
    fn flink_bytes_are_foreign_with_the_file_they_name() {
        // The tail of a real RetrievableStreamStateHandle: ... TC_STRING <len> <uri> ...
        let uri = b"file:/tmp/ha/peer1/completedCheckpoint2e1519c07c46";
        let mut bytes = vec![0xAC, 0xED, 0x00, 0x05, 0x73, 0x72, 0x00, 0x01, b't'];
        bytes.extend_from_slice(&[0x74, 0x00, 0x08]);
        bytes.extend_from_slice(b"file:/a/");
        bytes.extend_from_slice(&[0x74, 0x00, uri.len() as u8]);
        bytes.extend_from_slice(uri);
        bytes.extend_from_slice(&[0x78]);
        let err = Payload::decode("execution-plans/x", &bytes).unwrap_err();
        let StoreError::Foreign { key, detail } = err else {
            panic!("not foreign")
        };
        assert_eq!(key, "execution-plans/x");
        assert!(
            detail.ends_with("file file:/tmp/ha/peer1/completedCheckpoint2e1519c07c46"),
            "{detail}"
        );
        // The Kubernetes form: base64 of the same stream.
        let b64 = base64_encode_for_test(&bytes);
        assert!(b64.starts_with("rO0AB"));
        assert!(foreign_detail(b64.as_bytes()).contains("completedCheckpoint2e1519c07c46"));
        // No URI: still foreign, still described.
        assert!(foreign_detail(&[0xAC, 0xED, 0x00, 0x05]).contains("4 bytes"));
    }

    fn base64_encode_for_test(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
    proptest! {
        #[test]
        fn detail_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = foreign_detail(&bytes);
            let mut java = JAVA_MAGIC.to_vec();
            java.extend_from_slice(&bytes);
            let _ = foreign_detail(&java);
            let mut b64 = JAVA_MAGIC_BASE64.to_vec();
            b64.extend_from_slice(&bytes);
            let _ = foreign_detail(&b64);
        }
    }
}
