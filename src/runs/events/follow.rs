//! The one follower of `events.jsonl` (and any append-only line file): offsets, torn last
//! lines, truncation and replacement. Every reader of a run's events reads through it, with a
//! [`super::decode::Decoder`]: the TUI's collector, [`super::EventTail`] and
//! [`super::read_all`] (and so `report`, `analysis`, `ls`, `compare`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Follows an append-only file by offset, keeping an unfinished last line.
#[derive(Debug, Clone)]
pub struct Follower {
    path: PathBuf,
    /// Bytes consumed: whole lines, with their newlines.
    offset: u64,
    ino: u64,
    partial: Vec<u8>,
}

impl Follower {
    pub fn new(path: PathBuf) -> Follower {
        Follower { path, offset: 0, ino: 0, partial: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes consumed so far (whole lines).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// An unterminated last line is pending (a torn write, or one still being written).
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Feed every complete new line to `f`: it is given the unread rest of a chunk, consumes
    /// the line at its start and returns that line's length (without its newline), or `None`
    /// when no whole line is left (the rest waits for more). Returns true when the file shrank or was
    /// replaced: the follower is then back at the start, and the caller starts over (its
    /// earlier lines are gone). A file that cannot be opened has no lines yet.
    pub fn read(&mut self, mut f: impl FnMut(&[u8]) -> Option<usize>) -> bool {
        #[cfg(unix)]
        let ino_of = |m: &std::fs::Metadata| std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let ino_of = |_: &std::fs::Metadata| 0;
        let consumed = self.offset + self.partial.len() as u64;
        // Nothing new (most polls): told by the path's metadata, without opening the file (an
        // open costs more, and the runs root's watcher is woken by every open and close).
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() == consumed && ino_of(&m) == self.ino) {
            return false;
        }
        let Ok(mut file) = File::open(&self.path) else { return false };
        let Ok(meta) = file.metadata() else { return false };
        let ino = ino_of(&meta);
        let len = meta.len();
        if len < consumed || (self.ino != 0 && ino != self.ino) {
            self.offset = 0;
            self.partial.clear();
            self.ino = ino;
            return true;
        }
        self.ino = ino;
        if len == consumed {
            return false;
        }
        if file.seek(SeekFrom::Start(consumed)).is_err() {
            return false;
        }
        // In chunks through one buffer, each read with one `read` call: a whole file read at
        // once would be a fresh allocation the size of the file (page faults, and twice the
        // memory while it is folded), and a chunk that stays in the core's cache is parsed
        // while its bytes are still there.
        let mut remaining = len - consumed;
        let mut buf = std::mem::take(&mut self.partial);
        let mut filled = buf.len();
        let size = (filled as u64 + remaining).min(READ_CHUNK) as usize;
        buf.resize(size.max(filled), 0);
        while remaining > 0 {
            if filled == buf.len() {
                buf.resize(2 * buf.len(), 0); // a line longer than the buffer
            }
            let room = (buf.len() - filled).min(usize::try_from(remaining).unwrap_or(usize::MAX));
            match file.read(&mut buf[filled..filled + room]) {
                Ok(0) => break, // the file shrank meanwhile: the next read starts over
                Ok(got) => {
                    filled += got;
                    remaining -= got as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            let mut pos = 0;
            while let Some(n) = f(&buf[pos..filled]) {
                pos += n + 1;
            }
            self.offset += pos as u64;
            buf.copy_within(pos..filled, 0);
            filled -= pos;
        }
        buf.truncate(filled);
        // What is left is an unfinished line: keep it, not the chunk-sized buffer.
        self.partial = if buf.capacity() > 2 * buf.len() + 4096 { buf.as_slice().to_vec() } else { buf };
        false
    }
}

/// Bytes read per `read` call while following a file.
pub const READ_CHUNK: u64 = 1 << 20;
