//! Leader information in Flink's exact bytes: Java serialization of `writeUTF(address)` followed
//! by a `java.util.UUID` object. Empty data means "no leader".
//!
//! Written by hand (a few dozen bytes of a fixed shape) rather than with a general Java
//! serialization crate: only this one shape is ever read or written, and the decoder must reject
//! everything else with a clear error and never panic.

use crate::ids::LeaderSessionId;
use crate::leader_info::LeaderInformation;

const STREAM_MAGIC: [u8; 4] = [0xAC, 0xED, 0x00, 0x05];
const TC_BLOCKDATA: u8 = 0x77;
const TC_BLOCKDATALONG: u8 = 0x7A;
/// `TC_OBJECT TC_CLASSDESC "java.util.UUID" serialVersionUID flags fields... TC_ENDBLOCKDATA TC_NULL`.
const UUID_CLASS_DESC: &[u8] = &[
    0x73, 0x72, 0x00, 0x0E, b'j', b'a', b'v', b'a', b'.', b'u', b't', b'i', b'l', b'.', b'U', b'U',
    b'I', b'D', 0xBC, 0x99, 0x03, 0xF7, 0x98, 0x6D, 0x85, 0x2F, 0x02, 0x00, 0x02, 0x4A, 0x00, 0x0C,
    b'l', b'e', b'a', b's', b't', b'S', b'i', b'g', b'B', b'i', b't', b's', 0x4A, 0x00, 0x0B, b'm',
    b'o', b's', b't', b'S', b'i', b'g', b'B', b'i', b't', b's', 0x78, 0x70,
];

/// Why leader-information bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not Flink leader information: {0}")]
pub struct LeaderInfoDecodeError(pub String);

/// Encodes leader information as Flink's ZooKeeper `connection_info` bytes.
pub fn encode_leader_info(info: &LeaderInformation) -> Vec<u8> {
    let utf = modified_utf8(&info.address);
    // writeUTF can hold at most 65535 bytes; longer addresses are cut at a character boundary.
    let utf = truncate_modified_utf8(utf);
    let block_len = 2 + utf.len();
    let mut out = Vec::with_capacity(block_len + 100);
    out.extend_from_slice(&STREAM_MAGIC);
    if block_len <= 0xFF {
        out.push(TC_BLOCKDATA);
        out.push(block_len as u8);
    } else {
        out.push(TC_BLOCKDATALONG);
        out.extend_from_slice(&(block_len as u32).to_be_bytes());
    }
    out.extend_from_slice(&(utf.len() as u16).to_be_bytes());
    out.extend_from_slice(&utf);
    out.extend_from_slice(UUID_CLASS_DESC);
    let (most, least) = info.session_id.java_bits();
    out.extend_from_slice(&least.to_be_bytes());
    out.extend_from_slice(&most.to_be_bytes());
    out
}

/// Decodes Flink's `connection_info` bytes; `Ok(None)` for empty data (no leader).
pub fn decode_leader_info(data: &[u8]) -> Result<Option<LeaderInformation>, LeaderInfoDecodeError> {
    if data.is_empty() {
        return Ok(None);
    }
    let mut r = Reader { data, pos: 0 };
    if r.take(4)? != STREAM_MAGIC {
        return Err(err("missing Java serialization stream header AC ED 00 05"));
    }
    let block_len = match r.u8()? {
        TC_BLOCKDATA => r.u8()? as usize,
        TC_BLOCKDATALONG => r.u32()? as usize,
        other => {
            return Err(err(&format!(
                "expected a data block, found tag 0x{other:02X}"
            )));
        }
    };
    let utf_len = r.u16()? as usize;
    if block_len != utf_len + 2 {
        return Err(err("data block length does not match the address length"));
    }
    let address = decode_modified_utf8(r.take(utf_len)?)?;
    if r.take(UUID_CLASS_DESC.len())? != UUID_CLASS_DESC {
        return Err(err("expected a java.util.UUID object after the address"));
    }
    let least = i64::from_be_bytes(r.array()?);
    let most = i64::from_be_bytes(r.array()?);
    if r.pos != data.len() {
        return Err(err("trailing bytes after the session id"));
    }
    Ok(Some(LeaderInformation::new(
        LeaderSessionId::from_java_bits(most, least),
        address,
    )))
}

fn err(msg: &str) -> LeaderInfoDecodeError {
    LeaderInfoDecodeError(msg.to_owned())
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LeaderInfoDecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| err("truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], LeaderInfoDecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, LeaderInfoDecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, LeaderInfoDecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, LeaderInfoDecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
}

/// Java's modified UTF-8: NUL as `C0 80`, supplementary characters as two 3-byte surrogates.
fn modified_utf8(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007F => out.push(unit as u8),
            0x0000 | 0x0080..=0x07FF => {
                out.push(0xC0 | ((unit >> 6) & 0x1F) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                out.push(0xE0 | ((unit >> 12) & 0x0F) as u8);
                out.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    out
}

fn truncate_modified_utf8(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() <= u16::MAX as usize {
        return bytes;
    }
    let mut cut = u16::MAX as usize;
    while cut > 0 && bytes[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    bytes.truncate(cut);
    bytes
}

fn decode_modified_utf8(bytes: &[u8]) -> Result<String, LeaderInfoDecodeError> {
    let mut units = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let bad = || err("address is not valid modified UTF-8");
    while i < bytes.len() {
        let b = bytes[i];
        let cont = |j: usize| -> Result<u16, LeaderInfoDecodeError> {
            match bytes.get(j) {
                Some(&c) if c & 0xC0 == 0x80 => Ok((c & 0x3F) as u16),
                _ => Err(bad()),
            }
        };
        if b & 0x80 == 0 {
            units.push(b as u16);
            i += 1;
        } else if b & 0xE0 == 0xC0 {
            units.push((((b & 0x1F) as u16) << 6) | cont(i + 1)?);
            i += 2;
        } else if b & 0xF0 == 0xE0 {
            units.push((((b & 0x0F) as u16) << 12) | (cont(i + 1)? << 6) | cont(i + 2)?);
            i += 3;
        } else {
            return Err(bad());
        }
    }
    String::from_utf16(&units).map_err(|_| bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn session() -> LeaderSessionId {
        "da34a7de-6e4b-411d-8196-a44563d07feb".parse().unwrap()
    }

    /// Bytes a real Flink 2.2.0 wrote for `leader/rest_server/connection_info`.
    const FLINK_REST: &str = "aced000577180016687474703a2f2f3132372e302e302e313a33383038317372000e6a6176612e7574696c2e55554944bc9903f7986d852f
0200024a000c6c65617374536967426974734a000b6d6f73745369674269747378708196a44563d07febda34a7de6e4b411d";
    /// Bytes a real Flink 2.2.0 wrote for `leader/dispatcher/connection_info`.
    const FLINK_DISPATCHER: &str = "aced00057739003770656b6b6f2e7463703a2f2f666c696e6b406c6f63616c686f73743a33363132332f757365722f7270632f646973706174
636865725f317372000e6a6176612e7574696c2e55554944bc9903f7986d852f0200024a000c6c65617374536967426974734a000b6d6f7374
5369674269747378708196a44563d07febda34a7de6e4b411d";

    #[test]
    fn encodes_exactly_what_flink_writes() {
        let rest = LeaderInformation::new(session(), "http://127.0.0.1:38081");
        assert_eq!(encode_leader_info(&rest), hex(FLINK_REST));
        let disp = LeaderInformation::new(
            session(),
            "pekko.tcp://flink@localhost:36123/user/rpc/dispatcher_1",
        );
        assert_eq!(encode_leader_info(&disp), hex(FLINK_DISPATCHER));
    }

    #[test]
    fn decodes_what_flink_writes() {
        let info = decode_leader_info(&hex(FLINK_REST)).unwrap().unwrap();
        assert_eq!(info.address, "http://127.0.0.1:38081");
        assert_eq!(info.session_id, session());
        assert_eq!(decode_leader_info(&[]).unwrap(), None);
    }

    #[test]
    fn long_addresses_use_blockdatalong() {
        let info = LeaderInformation::new(session(), "x".repeat(300));
        let bytes = encode_leader_info(&info);
        assert_eq!(bytes[4], TC_BLOCKDATALONG);
        assert_eq!(decode_leader_info(&bytes).unwrap().unwrap(), info);
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        let e = decode_leader_info(b"127.0.0.1").unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
        let mut truncated = hex(FLINK_REST);
        truncated.pop();
        assert!(decode_leader_info(&truncated).is_err());
    }

    proptest! {
        #[test]
        fn round_trips_any_address(addr in "\\PC{0,300}", most: i64, least: i64) {
            let info = LeaderInformation::new(LeaderSessionId::from_java_bits(most, least), addr);
            prop_assert_eq!(decode_leader_info(&encode_leader_info(&info)).unwrap(), Some(info));
        }

        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_leader_info(&data);
        }

        #[test]
        fn decoder_never_panics_on_mutated_flink_bytes(idx in 0usize..120, byte: u8) {
            let mut data = hex(FLINK_REST);
            let i = idx % data.len();
            data[i] = byte;
            let _ = decode_leader_info(&data);
        }
    }
}
