//! Files of plain `u64` columns (the indexes' hashes and keys). Hashes do
//! not compress and statistics on them prune nothing, so a file is the
//! columns' little-endian bytes behind a short header, and loading one is
//! reading it: the columns are views into the bytes read (copied only if
//! they land unaligned), not decoded values. A scan that need not hold a
//! file ([`Blocks`]) reads it a block at a time into one reused buffer.
//!
//! Layout: the magic `PDBU64` 1 (8 bytes); the column count and the row
//! count (`u64` each); each column's name (its byte length as a `u64`, then
//! the bytes, padded with zeros to a multiple of 8); then each column's
//! values in turn.

use bytes::Bytes;

use super::Storage;
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
    let Some((rows, at)) = header(&bytes, names, bytes.len() as u64) else {
        return Ok(None);
    };
    let whole = Buffer::from(bytes);
    Ok(Some(
        (0..names.len())
            .map(|c| values(whole.slice_with_length(at + c * rows * 8, rows * 8)))
            .collect(),
    ))
}

/// The row count and where the values start, if `bytes` begin with the
/// header of a file of exactly `names` that is `size` bytes long.
fn header(bytes: &[u8], names: &[&str], size: u64) -> Option<(usize, usize)> {
    let word = |at: usize| -> Option<u64> {
        let b = bytes.get(at..at + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    if bytes.get(..8) != Some(MAGIC.as_slice()) || word(8) != Some(names.len() as u64) {
        return None;
    }
    let rows = usize::try_from(word(16)?).ok()?;
    let mut at = 24;
    for name in names {
        let len = name.len();
        if word(at) != Some(len as u64) || bytes.get(at + 8..at + 8 + len) != Some(name.as_bytes())
        {
            return None;
        }
        at += 8 + len.next_multiple_of(8);
    }
    let expected = rows.checked_mul(8 * names.len())?.checked_add(at)?;
    (expected as u64 == size).then_some((rows, at))
}

/// Little-endian `u64`s as values: a view of the bytes when aligned.
fn values(part: Buffer) -> ScalarBuffer<u64> {
    let len = part.len() / 8;
    if cfg!(target_endian = "little") && part.as_ptr().align_offset(8) == 0 {
        ScalarBuffer::new(part, 0, len)
    } else {
        part.as_slice()
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect()
    }
}

/// Rows read at a time by [`Blocks`] (2 MiB of each column).
pub const BLOCK_ROWS: usize = 1 << 18;

/// A stored file of `u64` columns read a block of rows at a time, so an
/// index of many millions of rows is scanned without ever being held
/// whole: every block is read into the same buffers
/// ([`Storage::read_into`]), so a scan touches the memory of one block.
#[derive(Debug, Clone)]
pub struct Blocks {
    rel: String,
    rows: usize,
    /// Where the first column's values start.
    at: usize,
}

impl Blocks {
    /// The file at `rel`, if it is one of exactly `names`.
    pub async fn open(
        storage: &Storage,
        rel: &str,
        names: &[&str],
    ) -> crate::error::Result<Option<Self>> {
        let Some(size) = storage.size(rel).await? else {
            return Ok(None);
        };
        let len = header_len(names) as u64;
        if size < len {
            return Ok(None);
        }
        let bytes = storage.get_range(rel, 0..len).await?;
        Ok(header(&bytes, names, size).map(|(rows, at)| Self {
            rel: rel.to_owned(),
            rows,
            at,
        }))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Calls `f(first row, values)` for each block of rows, in order, with
    /// the values of the columns at `columns` (indices into the names).
    pub async fn each(
        &self,
        storage: &Storage,
        columns: &[usize],
        mut f: impl FnMut(usize, &[&[u64]]),
    ) -> crate::error::Result<()> {
        let block_rows = BLOCK_ROWS.min(self.rows);
        let mut bytes = Vec::with_capacity(block_rows * 8);
        let mut block: Vec<Vec<u64>> = columns
            .iter()
            .map(|_| Vec::with_capacity(block_rows))
            .collect();
        let mut start = 0;
        while start < self.rows {
            let len = BLOCK_ROWS.min(self.rows - start);
            for (&c, values) in columns.iter().zip(&mut block) {
                let from = (self.at + (c * self.rows + start) * 8) as u64;
                bytes = storage
                    .read_into(&self.rel, from..from + len as u64 * 8, bytes)
                    .await?;
                values.clear();
                values.extend(
                    bytes
                        .chunks_exact(8)
                        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())),
                );
            }
            let views: Vec<&[u64]> = block.iter().map(Vec::as_slice).collect();
            f(start, &views);
            start += len;
        }
        Ok(())
    }
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

    #[tokio::test]
    async fn blocks_read_the_columns_a_block_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().to_str().unwrap();
        // A local root is read directly, another store through it.
        for root in ["memory://", local] {
            read_in_blocks(Storage::open(root).unwrap()).await;
        }
    }

    async fn read_in_blocks(storage: Storage) {
        let rows = BLOCK_ROWS + 1000;
        let a: Vec<u64> = (0..rows as u64).collect();
        let b: Vec<u64> = (0..rows as u64).map(|i| i * 3).collect();
        let bytes = encode(&["a", "bee"], &[&a, &b]).unwrap();
        storage.put_bytes("x.u64", bytes).await.unwrap();
        let blocks = Blocks::open(&storage, "x.u64", &["a", "bee"])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(blocks.rows(), rows);
        let (mut seen, mut starts) = (Vec::new(), Vec::new());
        blocks
            .each(&storage, &[1, 0], |start, block| {
                starts.push(start);
                assert_eq!(block[0].len(), block[1].len());
                seen.extend(block[0].iter().zip(block[1].iter()).map(|(b, a)| (*a, *b)));
            })
            .await
            .unwrap();
        assert_eq!(starts, vec![0, BLOCK_ROWS]);
        let expected: Vec<(u64, u64)> = a.iter().copied().zip(b.iter().copied()).collect();
        assert_eq!(seen, expected);
        assert!(
            Blocks::open(&storage, "x.u64", &["a", "b"])
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            Blocks::open(&storage, "missing.u64", &["a"])
                .await
                .unwrap()
                .is_none()
        );
    }
}
