//! The gathering of WAL frames, apart from the C interface so its rules read (and are tested)
//! as plain Rust.
//!
//! The WAL file's layout (<https://sqlite.org/fileformat2.html#walformat>): a 32-byte header at
//! offset 0, then frames, each a 24-byte frame header followed by one page. SQLite writes a
//! frame as two writes, header then page, and a commit's frames one after another; the last
//! frame of a commit carries the database size after the commit (bytes 4..8 of its header,
//! non-zero), every other frame zero there.
//!
//! Rules:
//! 1. A frame header written exactly where the last appended frame ended starts or extends the
//!    gathered run; the page that follows it joins the run.
//! 2. When the page of a commit frame joins, the run is written, and the outcome is that page
//!    write's outcome: nothing is gathered once a commit's frames are written.
//! 3. Any other write (the 32-byte WAL header, a frame rewritten in place, a checksum rewrite,
//!    a first frame at an offset this handle did not expect) writes the run first, then itself.
//! 4. Before a read, sync, truncate, size query or close, the run is written.

use std::ffi::c_int;

use rusqlite::ffi;

/// Bytes of a WAL frame header.
const FRAME_HEADER: usize = 24;

/// Bytes of the WAL file header, at offset 0.
const WAL_HEADER: usize = 32;

/// The most one call to the default VFS writes: the unix VFS takes at most 128 KiB - 1 bytes
/// per `xWrite` (it masks the length with `0x1ffff`), so a longer run goes in pieces of 124 KiB.
const MAX_WRITE: usize = 0x1f000;

/// A run past this size is written before it grows further (a transaction of many large
/// documents), so the buffer of one connection stays bounded.
const MAX_RUN_BYTES: usize = 8 << 20;

/// The frames gathered for one open WAL file.
#[derive(Debug, Default)]
pub(crate) struct WalRun {
    /// File offset of `bytes[0]`.
    start: i64,
    bytes: Vec<u8>,
    /// Frame headers in `bytes`.
    frames: u64,
    /// Where the next appended frame header is expected: the end of the last frame this handle
    /// appended. `None` until this handle has seen one, and after a failed write or a truncate.
    append_end: Option<i64>,
    /// The end of a frame header written straight through: the page written there completes
    /// an appended frame, and sets `append_end`.
    passed_header_end: Option<i64>,
    /// The last thing gathered is a frame header whose page has not come yet.
    expect_page: bool,
    /// That frame header is a commit frame's.
    commit: bool,
}

impl WalRun {
    /// Handles one write of `data` at `offset`, writing through `inner` what must be written
    /// now. Answers an SQLite result code.
    pub(crate) fn write(
        &mut self,
        data: &[u8],
        offset: i64,
        inner: &mut impl FnMut(&[u8], i64) -> c_int,
    ) -> c_int {
        if self.expect_page && offset == self.end() {
            // Rule 1: the page of the frame whose header was just gathered.
            self.bytes.extend_from_slice(data);
            self.expect_page = false;
            self.append_end = Some(self.end());
            if std::mem::take(&mut self.commit) {
                // Rule 2.
                return self.flush(inner);
            }
            return ffi::SQLITE_OK;
        }
        if data.len() == FRAME_HEADER && self.append_end == Some(offset) && !self.expect_page {
            // Rule 1: a frame header where the last appended frame ended.
            if self.bytes.len() >= MAX_RUN_BYTES {
                let rc = self.flush(inner);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            if self.bytes.is_empty() {
                self.start = offset;
            }
            self.bytes.extend_from_slice(data);
            self.frames += 1;
            self.expect_page = true;
            self.commit = data[4..8] != [0, 0, 0, 0];
            return ffi::SQLITE_OK;
        }
        // Rule 3.
        let rc = self.flush(inner);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let rc = inner(data, offset);
        crate::count_write(u64::from(data.len() == FRAME_HEADER));
        if rc != ffi::SQLITE_OK {
            self.append_end = None;
            return rc;
        }
        let end = offset + data.len() as i64;
        if offset == 0 && data.len() == WAL_HEADER {
            // The log starts over: frames follow the header.
            self.append_end = Some(end);
            self.passed_header_end = None;
        } else if data.len() == FRAME_HEADER {
            self.passed_header_end = Some(end);
        } else if self.passed_header_end.take() == Some(offset) {
            self.append_end = Some(end);
        }
        ffi::SQLITE_OK
    }

    /// Rule 4: writes the gathered run, if any, through `inner`.
    pub(crate) fn flush(&mut self, inner: &mut impl FnMut(&[u8], i64) -> c_int) -> c_int {
        self.expect_page = false;
        self.commit = false;
        if self.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let mut rc = ffi::SQLITE_OK;
        let mut offset = self.start;
        for piece in self.bytes.chunks(MAX_WRITE) {
            rc = inner(piece, offset);
            crate::count_write(0);
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += piece.len() as i64;
        }
        crate::count_frames(self.frames);
        self.bytes.clear();
        self.frames = 0;
        if rc != ffi::SQLITE_OK {
            self.append_end = None;
        }
        rc
    }

    /// Forgets where the log ends (the file was truncated).
    pub(crate) fn forget_end(&mut self) {
        self.append_end = None;
        self.passed_header_end = None;
    }

    fn end(&self) -> i64 {
        self.start + self.bytes.len() as i64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const PAGE: usize = 64;

    fn header(commit: bool) -> Vec<u8> {
        let mut h = vec![0u8; FRAME_HEADER];
        if commit {
            h[7] = 9;
        }
        h
    }

    fn frame_offset(i: i64) -> i64 {
        WAL_HEADER as i64 + i * (FRAME_HEADER + PAGE) as i64
    }

    /// Applies SQLite's write sequence for a commit of `pages` frames starting at frame
    /// `first`, recording every inner write.
    fn commit(run: &mut WalRun, first: i64, pages: i64, log: &mut Vec<(i64, usize)>) {
        let mut inner = |d: &[u8], o: i64| {
            log.push((o, d.len()));
            ffi::SQLITE_OK
        };
        for i in first..first + pages {
            let last = i == first + pages - 1;
            assert_eq!(run.write(&header(last), frame_offset(i), &mut inner), 0);
            assert_eq!(
                run.write(
                    &[1u8; PAGE],
                    frame_offset(i) + FRAME_HEADER as i64,
                    &mut inner
                ),
                0
            );
        }
    }

    #[test]
    fn a_commit_after_the_log_header_is_one_write_and_nothing_stays_gathered() {
        let mut run = WalRun::default();
        let mut log = Vec::new();
        assert_eq!(
            run.write(&[0u8; WAL_HEADER], 0, &mut |d, o| {
                log.push((o, d.len()));
                0
            }),
            0
        );
        commit(&mut run, 0, 20, &mut log);
        assert_eq!(
            log,
            vec![
                (0, WAL_HEADER),
                (frame_offset(0), 20 * (FRAME_HEADER + PAGE))
            ]
        );
        assert!(run.bytes.is_empty());
        // The next commit continues where this one ended: gathered again.
        commit(&mut run, 20, 3, &mut log);
        assert_eq!(log[2], (frame_offset(20), 3 * (FRAME_HEADER + PAGE)));
    }

    #[test]
    fn a_handle_that_does_not_know_the_end_finds_it_after_one_frame() {
        let mut run = WalRun::default();
        let mut log = Vec::new();
        commit(&mut run, 7, 4, &mut log);
        // Header and page of the first frame straight through, the other three gathered.
        assert_eq!(
            log,
            vec![
                (frame_offset(7), FRAME_HEADER),
                (frame_offset(7) + FRAME_HEADER as i64, PAGE),
                (frame_offset(8), 3 * (FRAME_HEADER + PAGE)),
            ]
        );
    }

    #[test]
    fn rewrites_of_earlier_frames_go_straight_through_after_the_run() {
        let mut run = WalRun::default();
        let mut log = Vec::new();
        let mut inner = |d: &[u8], o: i64| {
            log.push((o, d.len()));
            0
        };
        run.write(&[0u8; WAL_HEADER], 0, &mut inner);
        // Two frames of a transaction not yet committed (a spill)...
        for i in 0..2 {
            run.write(&header(false), frame_offset(i), &mut inner);
            run.write(&[1u8; PAGE], frame_offset(i) + 24, &mut inner);
        }
        // ...then the first one's page rewritten in place: the run goes first.
        run.write(&[2u8; PAGE], frame_offset(0) + 24, &mut inner);
        // The checksum rewrite of the commit frame's header, after a read (which flushes):
        // straight through, never left gathered.
        assert_eq!(run.flush(&mut inner), 0);
        run.write(&header(true), frame_offset(1), &mut inner);
        assert_eq!(
            log,
            vec![
                (0, WAL_HEADER),
                (frame_offset(0), 2 * (FRAME_HEADER + PAGE)),
                (frame_offset(0) + 24, PAGE),
                (frame_offset(1), FRAME_HEADER),
            ]
        );
        assert!(run.bytes.is_empty());
    }

    #[test]
    fn a_failed_write_is_the_commit_frames_answer_and_the_end_is_forgotten() {
        let mut run = WalRun::default();
        run.write(&[0u8; WAL_HEADER], 0, &mut |_, _| 0);
        let mut failing = |_: &[u8], _: i64| ffi::SQLITE_IOERR_WRITE;
        assert_eq!(run.write(&header(true), frame_offset(0), &mut failing), 0);
        assert_eq!(
            run.write(&[1u8; PAGE], frame_offset(0) + 24, &mut failing),
            ffi::SQLITE_IOERR_WRITE
        );
        assert!(run.bytes.is_empty());
        assert_eq!(run.append_end, None);
    }
}
