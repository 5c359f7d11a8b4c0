//! TFRecord framing, as TensorBoard reads it: each record is its length (u64, little-endian),
//! the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data.

/// TensorFlow's masked CRC-32C (`crc32c::Mask`): rotated right by 15 bits, plus a constant,
/// so that a CRC of data that itself holds CRCs is not degenerate.
pub fn masked_crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Append one framed record to `out`.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_castagnolis_and_masked_as_tensorflow_does() {
        // CRC-32C check value (RFC 3720, B.4): "123456789" → 0xE3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // Masked: ((c >> 15) | (c << 17)) + 0xa282ead8, worked by hand for that value.
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
        let mut out = Vec::new();
        frame(b"abc", &mut out);
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
    }
}
