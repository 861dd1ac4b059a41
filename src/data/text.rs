//! Text columns of a transaction log read in place: customer ids factorised by hashing, and
//! ISO dates parsed, both over the buffers of an Arrow string column (what pandas' `str` dtype,
//! polars and pyarrow hold), without a Python object per row.
//!
//! Factorising: rows are hashed and bucketed by hash into partitions small enough for a
//! partition's hash table and distinct values to stay in the cache (a radix partition: blocks
//! of rows count, then write, their rows' 16-byte records into their own stretches of each
//! partition, both in parallel); the partitions are numbered independently (in parallel), the
//! distinct ids are sorted by their bytes (UTF-8 byte order is code-point order, the order of
//! numpy's string sort), and the rows' codes are read back block by block (in parallel) from
//! their partitions' records. The blocks are fixed by the number of rows, so the result does
//! not depend on the thread count. Ids of up to 8 bytes (most ids) are keyed by their first 8
//! bytes read in one load and hashed from that key, so a row's bytes are read twice in all.
//!
//! Dates: only fixed-width ISO forms (`%Y-%m-%d`, and with `%H:%M:%S` after a space or a `T`)
//! are read here, strictly: a value in any other shape is not read at all ([`parse_times`]
//! returns None) and the caller falls back to its general parser, which decides and reports.

use std::ops::Range;

use hashbrown::HashTable;

use crate::error::{ClvError, Result};
use crate::parallel::Exec;

/// The offsets of an Arrow string array: 32-bit (`string`) or 64-bit (`large_string`).
#[derive(Debug, Clone, Copy)]
pub enum Offsets<'a> {
    Small(&'a [i32]),
    Large(&'a [i64]),
}

impl Offsets<'_> {
    fn len(&self) -> usize {
        match self {
            Offsets::Small(o) => o.len(),
            Offsets::Large(o) => o.len(),
        }
    }

    #[inline]
    fn at(&self, i: usize) -> i64 {
        match self {
            Offsets::Small(o) => i64::from(o[i]),
            Offsets::Large(o) => o[i],
        }
    }
}

/// One chunk of an Arrow string column: `offsets` (one more than the rows, already shifted to
/// the chunk's own offset), the bytes they index, and which rows are valid (None: all).
#[derive(Debug, Clone, Copy)]
pub struct TextChunk<'a> {
    pub offsets: Offsets<'a>,
    pub data: &'a [u8],
    pub valid: Option<&'a [bool]>,
}

impl<'a> TextChunk<'a> {
    /// Rows in the chunk.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// True when the chunk has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of row `i`, None when it is null.
    #[inline]
    fn get(&self, i: usize) -> Option<&'a [u8]> {
        if self.valid.is_some_and(|v| !v[i]) {
            return None;
        }
        let (start, end) = (self.offsets.at(i) as usize, self.offsets.at(i + 1) as usize);
        Some(&self.data[start..end])
    }

    /// Call `f(i, value)` for the rows `i` of `rows` in order (value None for a null): the
    /// offsets' type matched once, not per row.
    #[inline]
    fn each(&self, rows: Range<usize>, mut f: impl FnMut(usize, Option<Text<'a>>)) {
        #[inline(always)]
        fn run<'a, O: Copy>(
            chunk: &TextChunk<'a>,
            offsets: &[O],
            at: impl Fn(O) -> usize,
            rows: Range<usize>,
            f: &mut impl FnMut(usize, Option<Text<'a>>),
        ) {
            for (k, pair) in offsets[rows.start..=rows.end].windows(2).enumerate() {
                let i = rows.start + k;
                let value = match chunk.valid {
                    Some(valid) if !valid[i] => None,
                    _ => {
                        let (start, end) = (at(pair[0]), at(pair[1]));
                        Some(Text {
                            bytes: &chunk.data[start..end],
                            tail: &chunk.data[start..],
                        })
                    }
                };
                f(i, value);
            }
        }
        match self.offsets {
            Offsets::Small(o) => run(self, o, |x| x as usize, rows, &mut f),
            Offsets::Large(o) => run(self, o, |x| x as usize, rows, &mut f),
        }
    }

    /// Refuse offsets that do not index `data` in order (so that no row can read out of bounds).
    fn check(&self, column: &str) -> Result<()> {
        let n = self.len();
        let broken = self.offsets.len() == 0
            || self.valid.is_some_and(|v| v.len() != n)
            || (0..n)
                .any(|i| self.offsets.at(i) < 0 || self.offsets.at(i) > self.offsets.at(i + 1))
            || self.offsets.at(n) as u64 > self.data.len() as u64;
        if broken {
            return Err(ClvError::invalid_parameter(
                column,
                "the text buffers handed to the core are not a valid Arrow string array \
                 (please report this bug)",
            ));
        }
        Ok(())
    }
}

/// One value of a text column as [`TextColumn::each_in`] gives it: its bytes, and the chunk's
/// bytes from its start on (so that its first 8 bytes can be read in one load).
#[derive(Clone, Copy)]
struct Text<'a> {
    bytes: &'a [u8],
    tail: &'a [u8],
}

impl Text<'_> {
    /// [`prefix`] of the value, read as one 8-byte load (masked to the value's length) unless
    /// the value ends within the chunk's last 8 bytes.
    #[inline]
    fn prefix(&self) -> u64 {
        let len = self.bytes.len();
        match self.tail.first_chunk::<8>() {
            Some(head) if len >= 8 => u64::from_be_bytes(*head),
            Some(head) => u64::from_be_bytes(*head) & !(u64::MAX >> (8 * len)),
            None => prefix(self.bytes),
        }
    }
}

/// Chunks a [`TextColumn`] may have (the Python layer combines more into one).
pub const MAX_CHUNKS: usize = 1 << 20;

/// A text column: its chunks, in row order.
#[derive(Debug, Clone)]
pub struct TextColumn<'a> {
    chunks: Vec<TextChunk<'a>>,
    /// Row of the column where each chunk starts, and the total at the end.
    starts: Vec<usize>,
}

impl<'a> TextColumn<'a> {
    /// The column made of `chunks`; `column` names it in the error for malformed buffers.
    pub fn new(chunks: Vec<TextChunk<'a>>, column: &str) -> Result<Self> {
        if chunks.len() >= MAX_CHUNKS || chunks.iter().any(|c| c.len() as u64 >= 1 << 40) {
            return Err(ClvError::invalid_parameter(
                column,
                format!(
                    "the core reads text columns of fewer than {MAX_CHUNKS} chunks of fewer \
                     than 2^40 rows each (please report this bug)"
                ),
            ));
        }
        let mut starts = Vec::with_capacity(chunks.len() + 1);
        let mut total = 0usize;
        for chunk in &chunks {
            chunk.check(column)?;
            starts.push(total);
            total += chunk.len();
        }
        starts.push(total);
        Ok(TextColumn { chunks, starts })
    }

    /// Rows in the column.
    pub fn len(&self) -> usize {
        *self.starts.last().unwrap_or(&0)
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `out[row]` with `f(value)` for every row (None for nulls), chunk by chunk, each
    /// chunk in parallel blocks.
    fn fill<T: Send, F>(&self, exec: &Exec, out: &mut [T], f: F)
    where
        F: Fn(Option<&[u8]>) -> T + Sync,
    {
        for (chunk, &start) in self.chunks.iter().zip(&self.starts) {
            let rows = &mut out[start..start + chunk.len()];
            exec.fill(rows, |i| f(chunk.get(i)));
        }
    }

    /// Call `f(row, chunk, i, value)` for the rows of `rows` in order: `row` of the column, `i`
    /// of chunk `chunk` (value None for a null).
    fn each_in(
        &self,
        rows: Range<usize>,
        mut f: impl FnMut(usize, usize, usize, Option<Text<'a>>),
    ) {
        if rows.is_empty() {
            return;
        }
        // The chunk holding the first row (the last of those starting at or before it).
        let mut c = self.starts.partition_point(|&s| s <= rows.start) - 1;
        let mut row = rows.start;
        while row < rows.end {
            let start = self.starts[c];
            let end = rows.end.min(self.starts[c + 1]);
            self.chunks[c].each(row - start..end - start, |i, value| {
                f(start + i, c, i, value)
            });
            row = end;
            c += 1;
        }
    }
}

/// Distinct ids numbered in sorted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factorized {
    /// Each row's code: the rank of its id among the distinct ids (sorted by their bytes), -1
    /// for a null.
    pub codes: Vec<i64>,
    /// For each code, the first row holding that id.
    pub first_rows: Vec<i64>,
}

/// Rows per hash partition aimed at by [`factorize`]: a partition's table and its distinct
/// values stay in the cache while its rows are numbered.
const ROWS_PER_PARTITION: usize = 32_768;

/// Most hash partitions: a row's partition is kept in 16 bits, with [`NULL_ROW`] for nulls.
const MAX_PARTITIONS: usize = 1 << 15;

/// The partition recorded for a null row.
const NULL_ROW: u16 = u16::MAX;

/// The passes over rows run in at most this many blocks of consecutive rows (fixed by the
/// number of rows, not of threads) ...
const MAX_BLOCKS: usize = 256;

/// ... of at least this many rows each.
const MIN_BLOCK_ROWS: usize = 1 << 16;

/// The first 8 bytes of a value as a big-endian number (zero-padded): values compare like
/// their prefixes when those differ, and two values of at most 8 bytes are equal when their
/// lengths and prefixes are.
#[inline]
fn prefix(bytes: &[u8]) -> u64 {
    if let Some(head) = bytes.first_chunk::<8>() {
        return u64::from_be_bytes(*head);
    }
    // (Byte by byte: a copy of a variable length calls the C library's memmove.)
    let mut value = 0u64;
    for (k, &b) in bytes.iter().enumerate() {
        value |= u64::from(b) << (56 - 8 * k);
    }
    value
}

/// The high and low halves of the full product, folded (foldhash's mixing step).
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// A value's record key and its hash. A value of up to 8 bytes is keyed by its prefix (which,
/// with its length, is the value) and hashed from that key by two folded multiplies, without
/// reading its bytes again; a longer one is keyed by a hash of its bytes (foldhash), and its
/// bytes are compared only when two keys are equal.
#[derive(Clone)]
struct Keys(foldhash::fast::FixedState);

impl Keys {
    fn new() -> Keys {
        Keys(foldhash::fast::FixedState::with_seed(0x5eed_c1f5))
    }

    #[inline]
    fn key(&self, value: Text<'_>) -> u64 {
        use std::hash::BuildHasher;
        if value.bytes.len() <= 8 {
            value.prefix()
        } else {
            self.0.hash_one(value.bytes)
        }
    }

    /// The hash of the value of length class `short` (its length up to 8, 9 above) keyed `key`.
    #[inline]
    fn hash(key: u64, short: u64) -> u64 {
        if short <= 8 {
            fold(
                fold(key ^ 0x243f_6a88_85a3_08d3, 0x9e37_79b9_7f4a_7c15) ^ short,
                0xa409_3822_299f_31d1,
            )
        } else {
            key
        }
    }

    #[inline]
    fn hash_of(&self, value: Text<'_>) -> u64 {
        Keys::hash(self.key(value), value.bytes.len().min(9) as u64)
    }
}

/// A row of a hash partition: its key (see [`Keys`]; overwritten by the value's local id once
/// numbered, then by its code) and where it is: chunk (20 bits), row in the chunk (40 bits)
/// and length up to 9 (4 bits; 9 stands for any length above 8).
#[derive(Clone, Copy, Default)]
struct Place {
    key: u64,
    at: u64,
}

impl Place {
    #[inline]
    fn new(key: u64, bytes: &[u8], chunk: usize, row: usize) -> Place {
        let short = bytes.len().min(9) as u64;
        Place {
            key,
            at: (chunk as u64) << 44 | (row as u64) << 4 | short,
        }
    }

    #[inline]
    fn chunk(&self) -> usize {
        (self.at >> 44) as usize
    }

    #[inline]
    fn row(&self) -> usize {
        ((self.at >> 4) & ((1 << 40) - 1)) as usize
    }

    #[inline]
    fn short(&self) -> u64 {
        self.at & 15
    }
}

/// A distinct value met while numbering a partition.
#[derive(Clone, Copy)]
struct Seen<'a> {
    hash: u64,
    key: u64,
    bytes: &'a [u8],
    /// Its first row.
    row: usize,
}

/// A distinct value to sort: its prefix, bytes, first row and id before sorting.
#[derive(Clone, Copy)]
struct Distinct<'a> {
    prefix: u64,
    bytes: &'a [u8],
    row: usize,
    id: usize,
}

/// `items` cut into the stretches between consecutive `starts` (from 0 to its length).
fn split_at_starts<'a, T>(items: &'a mut [T], starts: &[usize]) -> Vec<&'a mut [T]> {
    let mut pieces = Vec::with_capacity(starts.len().saturating_sub(1));
    let mut rest = items;
    for bounds in starts.windows(2) {
        let (head, tail) = rest.split_at_mut(bounds[1] - bounds[0]);
        pieces.push(head);
        rest = tail;
    }
    pieces
}

/// Run `f` on every item, in parallel on a pool.
fn each_item<T: Send>(exec: &Exec, items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    use rayon::prelude::*;
    match exec {
        Exec::Pool(p) if items.len() > 1 => p.install(|| items.into_par_iter().for_each(f)),
        _ => items.into_iter().for_each(f),
    }
}

/// Number the distinct values of `column` in sorted (byte) order; see the module documentation.
pub fn factorize(column: &TextColumn<'_>, exec: &Exec) -> Factorized {
    use rayon::prelude::*;
    let n = column.len();
    let keys = Keys::new();
    // Hash partitions by bits 32 and up of the hash. The tables use the low bits for the slot
    // and the top 7 as tags, which must still tell the values of one partition apart.
    let partitions = (n / ROWS_PER_PARTITION)
        .clamp(1, MAX_PARTITIONS)
        .next_power_of_two();
    let partition = |h: u64| (h >> 32) as usize & (partitions - 1);
    let block_rows = n.div_ceil(MAX_BLOCKS).max(MIN_BLOCK_ROWS);
    let blocks = n.div_ceil(block_rows);
    // Pass 1, blocks in parallel: each row's partition, and each block's rows per partition.
    let mut part_of = vec![0u16; n];
    let mut counts = vec![0usize; blocks * partitions];
    {
        let work = |(b, (parts, counts)): (usize, (&mut [u16], &mut [usize]))| {
            let start = b * block_rows;
            column.each_in(start..start + parts.len(), |row, _, _, value| {
                parts[row - start] = match value {
                    None => NULL_ROW,
                    Some(value) => {
                        let p = partition(keys.hash_of(value));
                        counts[p] += 1;
                        p as u16
                    }
                };
            });
        };
        let items: Vec<_> = part_of
            .chunks_mut(block_rows)
            .zip(counts.chunks_mut(partitions))
            .enumerate()
            .collect();
        each_item(exec, items, work);
    }
    // The records go partition after partition, each in block order (so in row order): where
    // each block's rows of each partition start.
    let mut part_starts = vec![0usize; partitions + 1];
    let mut positions = vec![0usize; blocks * partitions];
    for p in 0..partitions {
        let mut next = part_starts[p];
        for b in 0..blocks {
            positions[b * partitions + p] = next;
            next += counts[b * partitions + p];
        }
        part_starts[p + 1] = next;
    }
    // Pass 2, blocks in parallel: each block writes its rows' records into its own regions.
    let mut places = vec![Place::default(); part_starts[partitions]];
    {
        let mut regions: Vec<Vec<&mut [Place]>> = (0..blocks)
            .map(|_| Vec::with_capacity(partitions))
            .collect();
        let mut rest: &mut [Place] = &mut places;
        for p in 0..partitions {
            for (b, region) in regions.iter_mut().enumerate() {
                let (head, tail) = rest.split_at_mut(counts[b * partitions + p]);
                region.push(head);
                rest = tail;
            }
        }
        let part_of = &part_of;
        let work = |(b, mut region): (usize, Vec<&mut [Place]>)| {
            let mut filled = vec![0usize; partitions];
            let start = b * block_rows;
            let end = (start + block_rows).min(n);
            column.each_in(start..end, |row, chunk, i, value| {
                if let Some(value) = value {
                    let p = part_of[row] as usize;
                    region[p][filled[p]] = Place::new(keys.key(value), value.bytes, chunk, i);
                    filled[p] += 1;
                }
            });
        };
        each_item(exec, regions.into_iter().enumerate().collect(), work);
    }
    drop(counts);
    // Each partition numbered on its own (in parallel): each record's key becomes the local id
    // of its value; the partition's distinct values are returned in order of first appearance.
    let bytes_of = |place: &Place| {
        column.chunks[place.chunk()]
            .get(place.row())
            .unwrap_or_default()
    };
    let number = |part: &mut &mut [Place]| {
        let mut table: HashTable<u32> = HashTable::new();
        let mut seen: Vec<Seen<'_>> = Vec::new();
        for place in part.iter_mut() {
            let here = *place;
            let (key, short) = (here.key, here.short());
            let h = Keys::hash(key, short);
            let same = |other: &Seen<'_>| {
                other.key == key
                    && other.bytes.len().min(9) as u64 == short
                    && (short <= 8 || other.bytes == bytes_of(&here))
            };
            let id = match table.find(h, |&j| same(&seen[j as usize])) {
                Some(&j) => j,
                None => {
                    let j = seen.len() as u32;
                    seen.push(Seen {
                        hash: h,
                        key,
                        bytes: bytes_of(&here),
                        row: column.starts[here.chunk()] + here.row(),
                    });
                    table.insert_unique(h, j, |&j| seen[j as usize].hash);
                    j
                }
            };
            place.key = u64::from(id);
        }
        seen
    };
    let mut pieces = split_at_starts(&mut places, &part_starts);
    let seen: Vec<Vec<Seen<'_>>> = exec.install(|| match exec {
        Exec::Pool(_) => pieces.par_iter_mut().map(number).collect(),
        Exec::Serial => pieces.iter_mut().map(number).collect(),
    });
    drop(pieces);
    // Global ids, partition by partition; the distinct values sorted by their bytes.
    let mut base = vec![0usize; partitions + 1];
    for k in 0..partitions {
        base[k + 1] = base[k] + seen[k].len();
    }
    let distinct = base[partitions];
    let mut sorted: Vec<Distinct<'_>> = Vec::with_capacity(distinct);
    for (id, v) in seen.iter().flatten().enumerate() {
        sorted.push(Distinct {
            prefix: if v.bytes.len() <= 8 {
                v.key
            } else {
                prefix(v.bytes)
            },
            bytes: v.bytes,
            row: v.row,
            id,
        });
    }
    drop(seen);
    exec.sort_unstable_by(&mut sorted, |a, b| {
        a.prefix.cmp(&b.prefix).then_with(|| a.bytes.cmp(b.bytes))
    });
    let mut rank = vec![0u64; distinct];
    for (position, value) in sorted.iter().enumerate() {
        rank[value.id] = position as u64;
    }
    // Each record's local id becomes its code (partitions in parallel: each reads its own
    // stretch of the ranks).
    {
        let work = |(p, part): (usize, &mut [Place])| {
            let ranks = &rank[base[p]..base[p + 1]];
            for place in part {
                place.key = ranks[place.key as usize];
            }
        };
        each_item(
            exec,
            split_at_starts(&mut places, &part_starts)
                .into_iter()
                .enumerate()
                .collect(),
            work,
        );
    }
    drop(rank);
    // Pass 3, blocks in parallel: each row's code, read from its partition's records in order.
    let mut codes = vec![0i64; n];
    {
        let (places, part_of, positions) = (&places, &part_of, &positions);
        let work = |(b, out): (usize, &mut [i64])| {
            let mut next = positions[b * partitions..(b + 1) * partitions].to_vec();
            let parts = &part_of[b * block_rows..b * block_rows + out.len()];
            for (slot, &p) in out.iter_mut().zip(parts) {
                *slot = if p == NULL_ROW {
                    -1
                } else {
                    let at = &mut next[p as usize];
                    let code = places[*at].key as i64;
                    *at += 1;
                    code
                };
            }
        };
        each_item(
            exec,
            codes.chunks_mut(block_rows).enumerate().collect(),
            work,
        );
    }
    let first_rows = sorted.iter().map(|value| value.row as i64).collect();
    Factorized { codes, first_rows }
}

/// The fixed-width ISO forms [`parse_times`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsoForm {
    /// `%Y-%m-%d`
    Date,
    /// `%Y-%m-%d %H:%M:%S`
    DateSpaceTime,
    /// `%Y-%m-%dT%H:%M:%S`
    DateTTime,
}

impl IsoForm {
    /// The form written as a strftime format, None for any other format.
    pub fn from_format(format: &str) -> Option<IsoForm> {
        match format {
            "%Y-%m-%d" => Some(IsoForm::Date),
            "%Y-%m-%d %H:%M:%S" => Some(IsoForm::DateSpaceTime),
            "%Y-%m-%dT%H:%M:%S" => Some(IsoForm::DateTTime),
            _ => None,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// The whole number written by `digits` (ASCII digits only), None otherwise.
#[inline]
fn number(digits: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(d - b'0');
    }
    Some(value)
}

/// Microseconds since the epoch of one value in `form`, None when it is not exactly in that
/// form or not a valid date and time (years 1 to 9999).
pub fn parse_one(bytes: &[u8], form: IsoForm) -> Option<i64> {
    let length = if form == IsoForm::Date { 10 } else { 19 };
    if bytes.len() != length || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (
        number(&bytes[0..4])?,
        number(&bytes[5..7])?,
        number(&bytes[8..10])?,
    );
    if year < 1 || !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if form != IsoForm::Date {
        let separator = if form == IsoForm::DateTTime {
            b'T'
        } else {
            b' '
        };
        if bytes[10] != separator || bytes[13] != b':' || bytes[16] != b':' {
            return None;
        }
        let (hour, minute, second) = (
            number(&bytes[11..13])?,
            number(&bytes[14..16])?,
            number(&bytes[17..19])?,
        );
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        seconds += hour * 3_600 + minute * 60 + second;
    }
    Some(seconds * 1_000_000)
}

/// Every row of `column` read in `form`, as microseconds since the epoch (`i64::MIN` for a
/// null); None as soon as one value is not exactly in that form.
pub fn parse_times(column: &TextColumn<'_>, form: IsoForm, exec: &Exec) -> Option<Vec<i64>> {
    const FAILED: i64 = i64::MIN + 1;
    let mut out = vec![0i64; column.len()];
    column.fill(exec, &mut out, |value| match value {
        None => i64::MIN,
        Some(bytes) => parse_one(bytes, form).unwrap_or(FAILED),
    });
    if out.contains(&FAILED) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column<'a>(offsets: &'a [i64], data: &'a [u8], valid: Option<&'a [bool]>) -> TextColumn<'a> {
        TextColumn::new(
            vec![TextChunk {
                offsets: Offsets::Large(offsets),
                data,
                valid,
            }],
            "id",
        )
        .unwrap()
    }

    #[test]
    fn codes_follow_the_sorted_ids_for_any_thread_count() {
        // "b", "a", "", "b", null, "ab", "a"
        let data = b"bababa";
        let offsets = [0, 1, 2, 2, 3, 3, 5, 6];
        let valid = [true, true, true, true, false, true, true];
        let col = column(&offsets, data, Some(&valid[..]));
        for threads in [1, 2, 3] {
            let exec = Exec::with_jobs(Some(threads)).unwrap();
            let f = factorize(&col, &exec);
            // Sorted: "", "a", "ab", "b".
            assert_eq!(f.codes, vec![3, 1, 0, 3, -1, 2, 1]);
            assert_eq!(f.first_rows, vec![2, 1, 5, 0]);
        }
    }

    #[test]
    fn many_partitions_agree_with_a_sorted_map() {
        // 200,000 rows of 30,000 ids (8 hash partitions), against a BTreeMap's numbering.
        let mut data = Vec::new();
        let mut offsets = vec![0i64];
        let mut state = 12_345u64;
        let mut values = Vec::new();
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let value = format!("id-{}", (state >> 33) % 30_000);
            data.extend_from_slice(value.as_bytes());
            offsets.push(data.len() as i64);
            values.push(value);
        }
        let col = column(&offsets, &data, None);
        let sorted: std::collections::BTreeMap<&str, usize> = values
            .iter()
            .rev()
            .enumerate()
            .map(|(k, v)| (v.as_str(), values.len() - 1 - k))
            .collect();
        let rank: std::collections::HashMap<&str, i64> = sorted
            .keys()
            .enumerate()
            .map(|(k, v)| (*v, k as i64))
            .collect();
        for threads in [1, 2] {
            let f = factorize(&col, &Exec::with_jobs(Some(threads)).unwrap());
            let want: Vec<i64> = values.iter().map(|v| rank[v.as_str()]).collect();
            assert_eq!(f.codes, want);
            let firsts: Vec<i64> = sorted.values().map(|&row| row as i64).collect();
            assert_eq!(f.first_rows, firsts);
        }
    }

    #[test]
    fn long_values_nulls_and_chunks_across_blocks_agree_with_a_sorted_map() {
        // 150,000 rows (three blocks of the row passes) in chunks of uneven sizes that the
        // blocks cut across, ids both short and longer than 8 bytes, every 7th row null.
        let mut values: Vec<Option<String>> = Vec::new();
        let mut state = 99u64;
        for row in 0..150_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let k = (state >> 33) % 20_000;
            values.push(match (row % 7, k % 3) {
                (0, _) => None,
                (_, 0) => Some(format!("{k}")),
                (_, 1) => Some(format!("customer-{k}")),
                _ => Some(format!("customer-{k}-with-a-longer-name")),
            });
        }
        let sizes = [1usize, 70_000, 0, 3, 50_000, 29_996];
        let mut buffers = Vec::new();
        let mut row = 0;
        for size in sizes {
            let (mut offsets, mut data, mut valid) = (vec![0i32], Vec::new(), Vec::new());
            for value in &values[row..row + size] {
                data.extend_from_slice(value.as_deref().unwrap_or("").as_bytes());
                offsets.push(data.len() as i32);
                valid.push(value.is_some());
            }
            buffers.push((offsets, data, valid));
            row += size;
        }
        assert_eq!(row, values.len());
        let chunks = buffers
            .iter()
            .map(|(offsets, data, valid)| TextChunk {
                offsets: Offsets::Small(offsets),
                data,
                valid: Some(valid),
            })
            .collect();
        let col = TextColumn::new(chunks, "id").unwrap();
        let mut first: std::collections::BTreeMap<&str, usize> = Default::default();
        for (row, value) in values.iter().enumerate() {
            if let Some(v) = value {
                first.entry(v.as_str()).or_insert(row);
            }
        }
        let rank: std::collections::HashMap<&str, i64> = first
            .keys()
            .enumerate()
            .map(|(k, v)| (*v, k as i64))
            .collect();
        let want: Vec<i64> = values
            .iter()
            .map(|v| v.as_deref().map_or(-1, |v| rank[v]))
            .collect();
        let firsts: Vec<i64> = first.values().map(|&row| row as i64).collect();
        for threads in [1, 2] {
            let f = factorize(&col, &Exec::with_jobs(Some(threads)).unwrap());
            assert_eq!(f.codes, want);
            assert_eq!(f.first_rows, firsts);
        }
    }

    #[test]
    fn prefixes_read_in_one_load_are_the_bytewise_ones() {
        let data = b"0123456789abcdefXYZ";
        for start in 0..data.len() {
            for end in start..=data.len() {
                let value = Text {
                    bytes: &data[start..end],
                    tail: &data[start..],
                };
                assert_eq!(value.prefix(), prefix(value.bytes), "{start}..{end}");
            }
        }
        assert_eq!(prefix(b"ab"), 0x6162 << 48);
    }

    #[test]
    fn chunks_are_one_column() {
        let (o1, d1) = ([0i32, 1, 2], b"xy");
        let (o2, d2) = ([0i64, 1, 2], b"yx");
        let col = TextColumn::new(
            vec![
                TextChunk {
                    offsets: Offsets::Small(&o1),
                    data: d1,
                    valid: None,
                },
                TextChunk {
                    offsets: Offsets::Large(&o2),
                    data: d2,
                    valid: None,
                },
            ],
            "id",
        )
        .unwrap();
        let f = factorize(&col, &Exec::Serial);
        assert_eq!(f.codes, vec![0, 1, 1, 0]);
        assert_eq!(f.first_rows, vec![0, 1]);
        // Offsets beyond the data are refused, not read.
        let bad = TextColumn::new(
            vec![TextChunk {
                offsets: Offsets::Large(&[0, 5]),
                data: b"ab",
                valid: None,
            }],
            "id",
        );
        assert!(bad.is_err());
    }

    #[test]
    fn iso_dates_are_read_strictly() {
        let day = 86_400_000_000i64;
        assert_eq!(parse_one(b"1970-01-02", IsoForm::Date), Some(day));
        assert_eq!(
            parse_one(b"1997-01-01", IsoForm::Date),
            Some(days_from_civil(1997, 1, 1) * day)
        );
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(parse_one(b"2000-02-29", IsoForm::Date), Some(11_016 * day));
        assert_eq!(
            parse_one(b"2000-02-29 01:02:03", IsoForm::DateSpaceTime),
            Some(11_016 * day + 3_723_000_000)
        );
        assert!(parse_one(b"2000-02-29T01:02:03", IsoForm::DateTTime).is_some());
        for bad in [
            &b"1900-02-29"[..],
            b"2001-13-01",
            b"2001-00-10",
            b"2001-04-31",
            b"2001-4-30",
            b" 2001-04-30",
            b"0000-01-01",
            b"2001-04-30 ",
            b"+001-04-30",
        ] {
            assert_eq!(parse_one(bad, IsoForm::Date), None, "{bad:?}");
        }
        for bad in [
            &b"2001-04-30 24:00:00"[..],
            b"2001-04-30T10:00:00",
            b"2001-04-30 10:60:00",
        ] {
            assert_eq!(parse_one(bad, IsoForm::DateSpaceTime), None, "{bad:?}");
        }
        let data = b"1970-01-021970-01-03";
        let col = column(&[0, 10, 10, 20], data, Some(&[true, false, true][..]));
        assert_eq!(
            parse_times(&col, IsoForm::Date, &Exec::Serial),
            Some(vec![day, i64::MIN, 2 * day])
        );
        let col = column(&[0, 10, 20], b"1970-01-02197X-01-03", None);
        assert_eq!(parse_times(&col, IsoForm::Date, &Exec::Serial), None);
    }
}
