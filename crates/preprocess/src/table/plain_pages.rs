//! The PLAIN-encoded pages of one column chunk, handed out straight from the decompressed
//! page buffers: fixed-width little-endian values, and for a nullable column the page's
//! definition levels (RLE / bit-packed hybrid, bit width 1). parquet's column reader would
//! first copy the values into a vector of its own (and zero it before); reading them where
//! they lie saves both passes over every value (BENCHMARKS.md, "Design measurements").
//! Chunks with dictionary pages or other encodings go
//! through parquet's column reader instead (see `parquet_matrix`).

use bytes::Bytes;
use parquet::basic::Encoding;
use parquet::column::page::{Page, PageReader};

/// What went wrong in a page (the caller names the file and the column).
pub(super) type PageResult<T> = std::result::Result<T, String>;

/// The pages of one column chunk whose values are all PLAIN.
pub(super) struct PlainPages {
    pages: Box<dyn PageReader>,
    nullable: bool,
    /// Bytes a value.
    size: usize,
    /// The current page's values; `at` is the next one's first byte.
    values: Bytes,
    at: usize,
    /// The current page's definition levels (0 null, 1 a value); `def_at` is the next row's.
    defs: Vec<u8>,
    def_at: usize,
    /// Rows of the current page not yet handed out.
    left: usize,
    /// Rows of the chunk in pages not yet read: a page claiming more is corrupt (its
    /// levels are not decoded, so a header claiming billions allocates nothing).
    unread: usize,
}

/// One stretch of rows of one page: their values (`size` bytes each, nulls having none) and,
/// for a nullable column, their definition levels.
pub(super) struct Stretch<'a> {
    pub(super) rows: usize,
    pub(super) values: &'a [u8],
    pub(super) defs: Option<&'a [u8]>,
}

impl PlainPages {
    /// The pages of a chunk of `rows` rows (its row group's).
    pub(super) fn new(
        pages: Box<dyn PageReader>,
        nullable: bool,
        size: usize,
        rows: usize,
    ) -> PlainPages {
        PlainPages {
            unread: rows,
            pages,
            nullable,
            size,
            values: Bytes::new(),
            at: 0,
            defs: Vec::new(),
            def_at: 0,
            left: 0,
        }
    }

    /// Up to `n` of the next rows, all from one page; `None` at the chunk's end.
    pub(super) fn take(&mut self, n: usize) -> PageResult<Option<Stretch<'_>>> {
        if self.left == 0 && !self.next_page()? {
            return Ok(None);
        }
        let rows = n.min(self.left);
        let (def_at, at) = (self.def_at, self.at);
        self.advance(rows)?;
        Ok(Some(Stretch {
            rows,
            values: &self.values[at..self.at],
            defs: self.nullable.then(|| &self.defs[def_at..self.def_at]),
        }))
    }

    /// Skips `n` rows, whole pages by their headers where they fit: the rows skipped.
    pub(super) fn skip(&mut self, n: usize) -> PageResult<usize> {
        let mut todo = n;
        while todo > 0 {
            if self.left == 0 {
                let Some(meta) = self.pages.peek_next_page().map_err(|e| e.to_string())? else {
                    break;
                };
                // not nested: a page's levels are its rows
                let rows = meta.num_rows.or(meta.num_levels);
                if let Some(rows) = rows.filter(|&r| !meta.is_dict && r <= todo) {
                    self.pages.skip_next_page().map_err(|e| e.to_string())?;
                    self.count(rows)?;
                    todo -= rows;
                    continue;
                }
                if !self.next_page()? {
                    break;
                }
            }
            let rows = todo.min(self.left);
            self.advance(rows)?;
            todo -= rows;
        }
        Ok(n - todo)
    }

    /// Counts a page of `rows` rows against the chunk's.
    fn count(&mut self, rows: usize) -> PageResult<()> {
        self.unread = self.unread.checked_sub(rows).ok_or_else(|| {
            format!(
                "a page of {rows} rows where the row group has {} left",
                self.unread
            )
        })?;
        Ok(())
    }

    /// Moves past `rows` rows of the current page (at most those left).
    fn advance(&mut self, rows: usize) -> PageResult<()> {
        let count = if self.nullable {
            let d = &self.defs[self.def_at..self.def_at + rows];
            self.def_at += rows;
            d.iter().filter(|&&l| l != 0).count()
        } else {
            rows
        };
        let end = self.at + count * self.size;
        if end > self.values.len() {
            return Err(format!(
                "a page holds {} bytes of values, fewer than its {} rows need",
                self.values.len(),
                self.left
            ));
        }
        self.at = end;
        self.left -= rows;
        Ok(())
    }

    /// Reads the next data page: false at the chunk's end.
    fn next_page(&mut self) -> PageResult<bool> {
        loop {
            let page = self.pages.get_next_page().map_err(|e| e.to_string())?;
            let (buf, rows, levels, encoding) = match page {
                None => return Ok(false),
                Some(Page::DataPage {
                    buf,
                    num_values,
                    encoding,
                    def_level_encoding,
                    ..
                }) => {
                    if !self.nullable {
                        (buf, num_values, None, encoding)
                    } else {
                        if def_level_encoding != Encoding::RLE {
                            return Err(format!(
                                "definition levels encoded {def_level_encoding}, not RLE"
                            ));
                        }
                        // v1: the levels' byte length, then the levels
                        let len = buf
                            .get(..4)
                            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                            .filter(|&l| l <= buf.len() - 4)
                            .ok_or("a page's definition levels run past its end")?;
                        (
                            buf.slice(4 + len..),
                            num_values,
                            Some(buf.slice(4..4 + len)),
                            encoding,
                        )
                    }
                }
                Some(Page::DataPageV2 {
                    buf,
                    num_values,
                    encoding,
                    def_levels_byte_len,
                    rep_levels_byte_len,
                    ..
                }) => {
                    let start = rep_levels_byte_len as usize;
                    let end = start + def_levels_byte_len as usize;
                    if end > buf.len() {
                        return Err("a page's levels run past its end".into());
                    }
                    let levels = self.nullable.then(|| buf.slice(start..end));
                    (buf.slice(end..), num_values, levels, encoding)
                }
                Some(Page::DictionaryPage { .. }) => {
                    return Err("a dictionary page where the chunk's metadata lists none".into());
                }
            };
            if encoding != Encoding::PLAIN {
                return Err(format!(
                    "a page encoded {encoding} where the chunk's metadata lists PLAIN only"
                ));
            }
            let rows = rows as usize;
            self.count(rows)?;
            if let Some(levels) = levels {
                definition_levels(&levels, rows, &mut self.defs)?;
            }
            self.values = buf;
            self.at = 0;
            self.def_at = 0;
            self.left = rows;
            if rows > 0 {
                return Ok(true);
            }
        }
    }
}

/// Decodes `n` definition levels of bit width 1 (RLE / bit-packed hybrid) into `out`.
fn definition_levels(mut b: &[u8], n: usize, out: &mut Vec<u8>) -> PageResult<()> {
    const SHORT: &str = "a page's definition levels end early";
    out.clear();
    out.reserve(n);
    while out.len() < n {
        // the run's header: a ULEB128 varint, its low bit the run's kind
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let (&byte, rest) = b.split_first().ok_or(SHORT)?;
            b = rest;
            if shift > 56 {
                return Err("a corrupt run header in a page's definition levels".into());
            }
            header |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let count = usize::try_from(header >> 1).map_err(|_| SHORT)?;
        if header & 1 == 0 {
            // a run of `count` copies of one level, stored in a byte
            let (&level, rest) = b.split_first().ok_or(SHORT)?;
            b = rest;
            if level > 1 {
                return Err(format!("definition level {level} in a column of at most 1"));
            }
            let k = count.min(n - out.len());
            out.resize(out.len() + k, level);
        } else {
            // `count` groups of 8 levels bit-packed, least significant bit first
            let bytes = b.get(..count).ok_or(SHORT)?;
            b = &b[count..];
            for &byte in bytes {
                let k = 8.min(n - out.len());
                out.extend((0..k).map(|bit| (byte >> bit) & 1));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PlainPages, definition_levels};
    use bytes::Bytes;
    use parquet::basic::Encoding;
    use parquet::column::page::{Page, PageMetadata, PageReader};

    /// Pages handed out from a list.
    struct Pages(std::vec::IntoIter<Page>);

    impl Iterator for Pages {
        type Item = parquet::errors::Result<Page>;
        fn next(&mut self) -> Option<Self::Item> {
            self.0.next().map(Ok)
        }
    }

    impl PageReader for Pages {
        fn get_next_page(&mut self) -> parquet::errors::Result<Option<Page>> {
            Ok(self.0.next())
        }
        fn peek_next_page(&mut self) -> parquet::errors::Result<Option<PageMetadata>> {
            Ok(self.0.as_slice().first().map(|p| PageMetadata {
                num_rows: None,
                num_levels: Some(p.num_values() as usize),
                is_dict: false,
            }))
        }
        fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
            self.0.next();
            Ok(())
        }
    }

    fn page(values: &[f32], levels: Option<&[u8]>, rows: u32) -> Page {
        let mut buf = Vec::new();
        if let Some(l) = levels {
            buf.extend((l.len() as u32).to_le_bytes());
            buf.extend(l);
        }
        buf.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        Page::DataPage {
            buf: Bytes::from(buf),
            num_values: rows,
            encoding: Encoding::PLAIN,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        }
    }

    #[test]
    fn stretches_stop_at_page_ends_and_skips_pass_whole_pages() {
        // two pages of 3 rows, the second with a null in the middle (levels 1, 0, 1 as one
        // bit-packed group: header 3, byte 0b101)
        let pages = vec![
            page(&[1.0, 2.0, 3.0], Some(&[6, 1]), 3),
            page(&[4.0, 6.0], Some(&[3, 0b101]), 3),
        ];
        let mut p = PlainPages::new(Box::new(Pages(pages.clone().into_iter())), true, 4, 6);
        let s = p.take(5).unwrap().unwrap();
        assert_eq!(
            (s.rows, s.values.len(), s.defs),
            (3, 12, Some(&[1u8, 1, 1][..]))
        );
        let s = p.take(5).unwrap().unwrap();
        assert_eq!(s.rows, 3);
        assert_eq!(s.values, [4f32.to_le_bytes(), 6f32.to_le_bytes()].concat());
        assert_eq!(s.defs, Some(&[1u8, 0, 1][..]));
        assert!(p.take(1).unwrap().is_none());
        // skip 4: the first page by its header, one row into the second
        let mut p = PlainPages::new(Box::new(Pages(pages.into_iter())), true, 4, 6);
        assert_eq!(p.skip(4).unwrap(), 4);
        let s = p.take(5).unwrap().unwrap();
        assert_eq!((s.rows, s.defs), (2, Some(&[0u8, 1][..])));
        assert_eq!(s.values, 6f32.to_le_bytes());
    }

    #[test]
    fn a_page_claiming_more_rows_than_its_group_is_an_error_before_its_levels() {
        // four billion rows in a run of ones four bytes long: decoding them would fill 4 GB
        let pages = vec![page(
            &[],
            Some(&[0xfe, 0xff, 0xff, 0xff, 0x1f, 1]),
            u32::MAX,
        )];
        let mut p = PlainPages::new(Box::new(Pages(pages.into_iter())), true, 4, 10);
        let e = p.take(10).err().unwrap();
        assert!(
            e.contains("4294967295 rows where the row group has 10 left"),
            "{e}"
        );
        // values shorter than the levels say
        let pages = vec![page(&[1.0], Some(&[6, 1]), 3)];
        let mut p = PlainPages::new(Box::new(Pages(pages.into_iter())), true, 4, 3);
        let e = p.take(3).err().unwrap();
        assert!(e.contains("fewer than its 3 rows need"), "{e}");
    }

    #[test]
    fn definition_levels_decode_runs_and_bit_packed_groups() {
        // an RLE run of 10 ones (header 10 << 1 = 20), then one bit-packed group (header
        // 1 << 1 | 1 = 3) of 0b1010_0110: LSB first 0,1,1,0,0,1,0,1, then a run of 3 zeros
        // written as a two-byte varint (3 << 1 = 6, padded: 0x86 0x00)
        let bytes = [20, 1, 3, 0b1010_0110, 0x86, 0x00, 0];
        let mut out = Vec::new();
        definition_levels(&bytes, 21, &mut out).unwrap();
        let mut want = vec![1; 10];
        want.extend([0, 1, 1, 0, 0, 1, 0, 1]);
        want.extend([0, 0, 0]);
        assert_eq!(out, want);
        // fewer levels wanted than the runs hold: cut at n
        definition_levels(&bytes, 12, &mut out).unwrap();
        assert_eq!(out, want[..12]);
    }

    #[test]
    fn corrupt_definition_levels_are_errors() {
        let mut out = Vec::new();
        // the run ends before the levels wanted
        let e = definition_levels(&[20, 1], 11, &mut out).unwrap_err();
        assert!(e.contains("end early"), "{e}");
        // a bit-packed header claiming more bytes than there are
        let e = definition_levels(&[9, 0xff], 8, &mut out).unwrap_err();
        assert!(e.contains("end early"), "{e}");
        // a level above the column's maximum of 1
        let e = definition_levels(&[4, 2], 2, &mut out).unwrap_err();
        assert!(e.contains("definition level 2"), "{e}");
        // a varint that never ends
        let e = definition_levels(&[0xff; 12], 2, &mut out).unwrap_err();
        assert!(e.contains("corrupt run header"), "{e}");
    }
}
