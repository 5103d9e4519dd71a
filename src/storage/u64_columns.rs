//! Files of plain `u64` columns (the indexes' hashes and keys). Hashes do
//! not compress and statistics on them prune nothing, so a file is the
//! columns' little-endian bytes behind a short header, and loading one is
//! reading it: the columns are views into the bytes read (copied only if
//! they land unaligned), not decoded values.
//!
//! Layout: the magic `PDBU64` 1 (8 bytes); the column count and the row
//! count (`u64` each); each column's name (its byte length as a `u64`, then
//! the bytes, padded with zeros to a multiple of 8); then each column's
//! values in turn.

use bytes::Bytes;
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::error::{DataFusionError, Result};

const MAGIC: &[u8; 8] = b"PDBU64\x00\x01";

/// Columns `names` (of equal length) as a file.
pub fn encode(names: &[&str], columns: &[&[u64]]) -> Result<Bytes> {
    let rows = columns.first().map_or(0, |c| c.len());
    if columns.len() != names.len() || columns.iter().any(|c| c.len() != rows) {
        return Err(DataFusionError::Internal(
            "u64 columns of unequal lengths".into(),
        ));
    }
    let mut out = Vec::with_capacity(header_len(names) + rows * 8 * names.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(names.len() as u64).to_le_bytes());
    out.extend_from_slice(&(rows as u64).to_le_bytes());
    for name in names {
        out.extend_from_slice(&(name.len() as u64).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.resize(out.len().next_multiple_of(8), 0);
    }
    for column in columns {
        for v in *column {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(Bytes::from(out))
}

fn header_len(names: &[&str]) -> usize {
    24 + names
        .iter()
        .map(|n| 8 + n.len().next_multiple_of(8))
        .sum::<usize>()
}

/// The stored columns; None if the file does not hold exactly `names` (an
/// index of another layout or an older format, which is then rebuilt).
pub fn decode(bytes: Bytes, names: &[&str]) -> Result<Option<Vec<ScalarBuffer<u64>>>> {
    let word = |at: usize| -> Option<u64> {
        let b = bytes.get(at..at + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    if bytes.get(..8) != Some(MAGIC.as_slice()) || word(8) != Some(names.len() as u64) {
        return Ok(None);
    }
    let Some(rows) = word(16).and_then(|r| usize::try_from(r).ok()) else {
        return Ok(None);
    };
    let mut at = 24;
    for name in names {
        let len = name.len();
        if word(at) != Some(len as u64) || bytes.get(at + 8..at + 8 + len) != Some(name.as_bytes())
        {
            return Ok(None);
        }
        at += 8 + len.next_multiple_of(8);
    }
    let Some(size) = rows
        .checked_mul(8 * names.len())
        .and_then(|s| s.checked_add(at))
    else {
        return Ok(None);
    };
    if bytes.len() != size {
        return Ok(None);
    }
    let whole = Buffer::from(bytes);
    Ok(Some(
        (0..names.len())
            .map(|c| {
                let part = whole.slice_with_length(at + c * rows * 8, rows * 8);
                if cfg!(target_endian = "little") && part.as_ptr().align_offset(8) == 0 {
                    ScalarBuffer::new(part, 0, rows)
                } else {
                    part.as_slice()
                        .chunks_exact(8)
                        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                        .collect()
                }
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_and_other_layouts_are_refused() {
        let a: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let b: Vec<u64> = (0..1000).rev().collect();
        let bytes = encode(&["a", "bee"], &[&a, &b]).unwrap();
        let c = decode(bytes.clone(), &["a", "bee"]).unwrap().unwrap();
        assert_eq!((&c[0][..], &c[1][..]), (&a[..], &b[..]));
        // Unaligned bytes are copied.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        let unaligned = Bytes::from(shifted).slice(1..);
        let c = decode(unaligned, &["a", "bee"]).unwrap().unwrap();
        assert_eq!(&c[1][..], &b[..]);
        assert!(decode(bytes.clone(), &["a", "b"]).unwrap().is_none());
        assert!(
            decode(bytes.slice(..bytes.len() - 8), &["a", "bee"])
                .unwrap()
                .is_none()
        );
        assert!(
            decode(Bytes::from_static(b"PAR1...."), &["a"])
                .unwrap()
                .is_none()
        );
        let empty = encode(&["x"], &[&[]]).unwrap();
        assert_eq!(decode(empty, &["x"]).unwrap().unwrap()[0].len(), 0);
    }
}
