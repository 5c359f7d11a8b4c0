//! An independent reader of TensorBoard event files, written for the tests from the format's
//! description (TFRecord framing with masked CRC-32C; the Event, Summary and SessionLog
//! protobuf messages) and sharing no code with mixscope's writer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli), bit by bit.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked(data: &[u8]) -> u32 {
    let c = crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// What one record says.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    FileVersion(String),
    /// (tag, simple_value)
    Scalars(Vec<(String, f32)>),
    /// SessionLog with its status (1 = START).
    Session(u64),
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub wall_time: f64,
    pub step: u64,
    pub what: What,
}

/// The records of one file, and how many bytes follow the last whole record (a torn record).
/// Panics when a whole record's CRC is wrong or its message does not decode.
pub fn read(path: &Path) -> (Vec<Rec>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0;
    let mut out = Vec::new();
    while bytes.len() - at >= 12 {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(len_crc, masked(len_bytes), "{}: length CRC of the record at byte {at}", path.display());
        if bytes.len() - at < 12 + len + 4 {
            break; // torn at the end
        }
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked(data), "{}: data CRC of the record at byte {at}", path.display());
        out.push(decode_event(data));
        at += 16 + len;
    }
    (out, bytes.len() - at)
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let x = b[*at];
        *at += 1;
        v |= ((x & 0x7f) as u64) << shift;
        if x & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// The fields of a message: (number, wire value). Lengths-delimited fields keep their bytes.
enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(&'a [u8]),
}

fn fields(b: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = varint(b, &mut at);
        let f = match key & 7 {
            0 => Field::Varint(varint(b, &mut at)),
            1 => {
                at += 8;
                Field::Fixed64(b[at - 8..at].try_into().unwrap())
            }
            2 => {
                let n = varint(b, &mut at) as usize;
                at += n;
                Field::Bytes(&b[at - n..at])
            }
            5 => {
                at += 4;
                Field::Fixed32(b[at - 4..at].try_into().unwrap())
            }
            w => panic!("wire type {w}"),
        };
        out.push((key >> 3, f));
    }
    out
}

fn decode_event(b: &[u8]) -> Rec {
    let mut r = Rec { wall_time: 0.0, step: 0, what: What::Other };
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Fixed64(x)) => r.wall_time = f64::from_le_bytes(x),
            (2, Field::Varint(x)) => r.step = x,
            (3, Field::Bytes(s)) => r.what = What::FileVersion(String::from_utf8(s.to_vec()).unwrap()),
            (5, Field::Bytes(s)) => {
                let mut vals = Vec::new();
                for (n, f) in fields(s) {
                    let (1, Field::Bytes(v)) = (n, f) else { panic!("Summary field {n}") };
                    let (mut tag, mut val) = (None, None);
                    for (n, f) in fields(v) {
                        match (n, f) {
                            (1, Field::Bytes(t)) => tag = Some(String::from_utf8(t.to_vec()).unwrap()),
                            (2, Field::Fixed32(x)) => val = Some(f32::from_le_bytes(x)),
                            _ => panic!("Summary.Value field {n}"),
                        }
                    }
                    vals.push((tag.expect("a tag"), val.expect("a simple_value")));
                }
                r.what = What::Scalars(vals);
            }
            (7, Field::Bytes(s)) => {
                let status = fields(s)
                    .into_iter()
                    .find_map(|(n, f)| match (n, f) {
                        (1, Field::Varint(x)) => Some(x),
                        _ => None,
                    })
                    .unwrap_or(0);
                r.what = What::Session(status);
            }
            (n, _) => panic!("Event field {n}"),
        }
    }
    r
}

/// The event files of a directory, in name order (the order TensorBoard reads them).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.retain(|p| p.file_name().unwrap().to_string_lossy().contains("tfevents"));
    v.sort();
    v
}

/// What TensorBoard shows for a directory: every tag's points by step, after each SessionLog
/// START at step s has dropped the points at s and later that earlier files wrote.
pub fn scalars(dir: &Path) -> BTreeMap<String, BTreeMap<u64, f32>> {
    let mut out: BTreeMap<String, BTreeMap<u64, f32>> = BTreeMap::new();
    for f in files(dir) {
        for r in read(&f).0 {
            match r.what {
                What::Session(1) => {
                    for pts in out.values_mut() {
                        pts.retain(|s, _| *s < r.step);
                    }
                }
                What::Scalars(vals) => {
                    for (t, v) in vals {
                        out.entry(t).or_default().insert(r.step, v);
                    }
                }
                _ => {}
            }
        }
    }
    out
}
