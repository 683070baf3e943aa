//! The outbox's journal, `<data_dir>/outbox.journal`: an append-only redo log of the changes the
//! committer makes, so that a batch is durable after one small sequential write and one
//! `fdatasync`, instead of a durable redb commit (which rewrites a path of B-tree pages in every
//! table it touches, scattered over the file, before its own fsync).
//!
//! The committer applies each batch to an open redb write transaction, appends the batch's
//! effective changes here as one frame, syncs the file, and only then answers. The transaction
//! collects the batches of a few milliseconds and is then committed, durably when the journal
//! wants a checkpoint ([`Journal::wants_checkpoint`]); from a durable commit on, the frames it
//! holds are only history, and the next frame is written at the start of the file again. Opening the outbox replays the frames the database does not hold yet: every transaction
//! records the sequence number of its newest frame in `meta`, so a frame is applied at most once,
//! whatever a crash left behind.
//!
//! The file is written in place, never grown in normal work: it is created at [`CAPACITY`],
//! filled with zeros, and frames overwrite what is there. Syncing an overwrite flushes only the
//! data, whereas syncing an append must also commit the file system's journal (the file's size,
//! its new blocks), which waits for every other file's data in that journal transaction: the
//! database's pages included. A batch larger than what is left grows the file.
//!
//! A frame: payload length (u32, little endian), CRC-32 of the payload (u32), then the payload:
//! sequence number (u64), the batch's time in milliseconds since the epoch (u64), and the
//! changes as a JSON array of [`Change`]. A frame that is cut short or fails its checksum ends
//! the journal: it can only be the last append, interrupted by the crash before its sync, and
//! nobody was told it was stored. So does a frame whose sequence number does not follow the one
//! before it: what comes after the newest frames is older frames, or zeros.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::committer::Settlement;
use crate::pushjet::NewMessage;

/// The journal's file inside the data directory.
pub const JOURNAL_FILE_NAME: &str = "outbox.journal";

/// The journal file's size: room for the frames of one transaction (a few milliseconds of
/// batches) many times over.
const CAPACITY: u64 = 1024 * 1024;
/// How long the frames may pile up before a durable commit lets them go (see
/// [`Journal::wants_checkpoint`]).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// Length and checksum before each frame's payload.
const FRAME_HEADER: usize = 8;
/// Sequence number and time at the start of each payload.
const PAYLOAD_HEADER: usize = 16;

/// One effective change of a batch, as read back. Only changes that were applied are journaled:
/// a refused request changed nothing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Change {
    /// Notifications queued for a route, with the webhook's dedup key.
    Enqueue {
        route: String,
        messages: Vec<NewMessage>,
        dedup_key: Option<String>,
        /// How long the key is remembered; absent: `PUSHJET_BRIDGE_DEDUP_WINDOW`.
        #[serde(default)]
        dedup_window_ms: Option<u64>,
    },
    /// The outcome of a send.
    Settle {
        id: u64,
        route: String,
        settlement: Settlement,
    },
    /// A dead letter queued again.
    RetryDeadLetter { id: u64 },
    /// A dead letter deleted.
    PurgeDeadLetter { id: u64 },
}

/// A [`Change`] as written, borrowed from the committer's request (the same JSON).
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum ChangeRef<'a> {
    /// See [`Change::Enqueue`].
    Enqueue {
        route: &'a str,
        messages: &'a [NewMessage],
        dedup_key: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dedup_window_ms: Option<u64>,
    },
    /// See [`Change::Settle`].
    Settle {
        id: u64,
        route: &'a str,
        settlement: &'a Settlement,
    },
    /// See [`Change::RetryDeadLetter`].
    RetryDeadLetter { id: u64 },
    /// See [`Change::PurgeDeadLetter`].
    PurgeDeadLetter { id: u64 },
}

impl ChangeRef<'_> {
    /// The change as JSON.
    pub(super) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// A journaled batch read back.
#[derive(Debug, PartialEq)]
pub(super) struct Frame {
    pub(super) seq: u64,
    pub(super) now: u64,
    pub(super) changes: Vec<Change>,
}

/// The open journal, owned by the committer thread.
#[derive(Debug)]
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    /// Where the next frame is written; the frames before it are not all committed.
    offset: u64,
    /// The sequence number of the next frame.
    next_seq: u64,
    /// Set when a transaction holding answered changes could not be committed: the journal is
    /// then the only place they are, and must stay as it is until the next start replays it.
    broken: bool,
    /// When a durable commit last took every frame.
    checkpointed_at: Instant,
}

impl Journal {
    /// Opens the journal in `data_dir` (creating it, mode 0600, filled with zeros to
    /// [`CAPACITY`]) and reads every intact frame in it, oldest first. `next_seq` follows the
    /// newest frame and `last_applied` (the sequence number the database holds).
    pub(super) fn open(data_dir: &Path, last_applied: u64) -> io::Result<(Self, Vec<Frame>)> {
        let path = data_dir.join(JOURNAL_FILE_NAME);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (frames, intact) = read_frames(&bytes);
        let length = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if length < CAPACITY {
            let zeros = vec![0; usize::try_from(CAPACITY - length).unwrap_or(0)];
            file.write_all_at(&zeros, length)?;
            file.sync_all()?;
        }
        let newest = frames.last().map_or(0, |frame| frame.seq);
        let journal = Self {
            file,
            path,
            offset: u64::try_from(intact).unwrap_or(u64::MAX),
            next_seq: newest.max(last_applied).saturating_add(1),
            broken: false,
            checkpointed_at: Instant::now(),
        };
        Ok((journal, frames))
    }

    /// The sequence number the next frame will have.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Keeps the journal as it is until the next start: answered changes could not be committed
    /// to the database, so they are only here.
    pub(super) fn break_off(&mut self) {
        self.broken = true;
    }

    /// True after [`Self::break_off`]: nothing more may be stored before a restart.
    pub(super) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Writes one frame holding `changes` (each already JSON) after the frames not yet committed,
    /// and with `sync` syncs it to disk; returns the frame's length. A frame written without a
    /// sync reaches the disk with the next synced one (the sync covers the whole file) or is
    /// replaced by a durable commit. On failure the frame is taken back, as far as the disk
    /// allows.
    pub(super) fn append(&mut self, now: u64, changes: &[Vec<u8>], sync: bool) -> io::Result<u64> {
        let frame = encode_frame(self.next_seq, now, changes);
        let frame_len = u64::try_from(frame.len()).unwrap_or(u64::MAX);
        let written = self
            .file
            .write_all_at(&frame, self.offset)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        match written {
            Ok(()) => {
                self.offset = self.offset.saturating_add(frame_len);
                self.next_seq = self.next_seq.saturating_add(1);
                Ok(frame_len)
            }
            Err(error) => {
                self.invalidate(self.offset);
                Err(error)
            }
        }
    }

    /// Takes back the last frame written: its batch could not be committed to the database, and
    /// its callers are told it failed.
    pub(super) fn undo_last(&mut self, frame_len: u64) {
        self.offset = self.offset.saturating_sub(frame_len);
        self.next_seq = self.next_seq.saturating_sub(1);
        self.invalidate(self.offset);
    }

    /// Says that a durable commit holds every frame written: the next one goes to the start of
    /// the file. Nothing needs syncing: should a crash come before new frames replace the old
    /// ones, the database says it has them already.
    pub(super) fn checkpointed(&mut self) {
        self.offset = 0;
        self.checkpointed_at = Instant::now();
    }

    /// Whether the next commit should be durable: the frames since the last one fill half the
    /// file, or are [`CHECKPOINT_EVERY`] old. Commits in between only make the changes readable
    /// (the frames keep them durable), so the database's pages and their sync are written a few
    /// times a second rather than at every commit.
    pub(super) fn wants_checkpoint(&self) -> bool {
        self.offset >= CAPACITY / 2 || self.checkpointed_at.elapsed() >= CHECKPOINT_EVERY
    }

    /// How long until frames no durable commit holds yet are due for one; `None` when there
    /// are none (or the journal is broken: it then stays as it is).
    pub(super) fn checkpoint_due_in(&self) -> Option<Duration> {
        (self.offset > 0 && !self.broken)
            .then(|| CHECKPOINT_EVERY.saturating_sub(self.checkpointed_at.elapsed()))
    }

    /// Zeros the header of the frame at `offset`, so that reading stops there.
    fn invalidate(&self, offset: u64) {
        let cleared = self
            .file
            .write_all_at(&[0; FRAME_HEADER], offset)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = cleared {
            tracing::error!(
                path = %self.path.display(),
                "cannot take back a frame of the outbox journal after a failed write: {error}"
            );
        }
    }
}

/// The bytes of one frame.
pub(super) fn encode_frame(seq: u64, now: u64, changes: &[Vec<u8>]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(
        PAYLOAD_HEADER + 2 + changes.iter().map(|change| change.len() + 1).sum::<usize>(),
    );
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.extend_from_slice(&now.to_le_bytes());
    payload.push(b'[');
    for (index, change) in changes.iter().enumerate() {
        if index > 0 {
            payload.push(b',');
        }
        payload.extend_from_slice(change);
    }
    payload.push(b']');
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// The intact frames at the start of `bytes`, each numbered one more than the one before, and
/// how many bytes they take.
fn read_frames(bytes: &[u8]) -> (Vec<Frame>, usize) {
    let mut frames: Vec<Frame> = Vec::new();
    let mut at = 0;
    while let Some((frame, next)) = read_frame(bytes, at) {
        if let Some(before) = frames.last()
            && frame.seq != before.seq.saturating_add(1)
        {
            break;
        }
        frames.push(frame);
        at = next;
    }
    (frames, at)
}

/// The frame starting at `at` and where the next one starts; `None` at the end or at a frame
/// that is cut short, damaged or unreadable.
fn read_frame(bytes: &[u8], at: usize) -> Option<(Frame, usize)> {
    let header = bytes.get(at..at.checked_add(FRAME_HEADER)?)?;
    let length = usize::try_from(u32::from_le_bytes(header[..4].try_into().ok()?)).ok()?;
    let checksum = u32::from_le_bytes(header[4..].try_into().ok()?);
    let start = at + FRAME_HEADER;
    let end = start.checked_add(length)?;
    let payload = bytes.get(start..end)?;
    if length < PAYLOAD_HEADER || crc32fast::hash(payload) != checksum {
        return None;
    }
    let seq = u64::from_le_bytes(payload[..8].try_into().ok()?);
    let now = u64::from_le_bytes(payload[8..16].try_into().ok()?);
    let changes = serde_json::from_slice(&payload[PAYLOAD_HEADER..]).ok()?;
    Some((Frame { seq, now, changes }, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::test_support::message;

    fn change(id: u64) -> Change {
        Change::Settle {
            id,
            route: "r".to_owned(),
            settlement: Settlement::Sent,
        }
    }

    /// The JSON the committer writes for a change.
    fn json(change: &Change) -> Vec<u8> {
        let written = match change {
            Change::Enqueue {
                route,
                messages,
                dedup_key,
                dedup_window_ms,
            } => ChangeRef::Enqueue {
                route,
                messages,
                dedup_key: dedup_key.as_deref(),
                dedup_window_ms: *dedup_window_ms,
            },
            Change::Settle {
                id,
                route,
                settlement,
            } => ChangeRef::Settle {
                id: *id,
                route,
                settlement,
            },
            Change::RetryDeadLetter { id } => ChangeRef::RetryDeadLetter { id: *id },
            Change::PurgeDeadLetter { id } => ChangeRef::PurgeDeadLetter { id: *id },
        };
        written.to_json().unwrap()
    }

    #[test]
    fn every_change_reads_back_as_written() {
        let changes = [
            Change::Enqueue {
                route: "gh".to_owned(),
                messages: vec![message("one")],
                dedup_key: None,
                dedup_window_ms: None,
            },
            Change::Settle {
                id: 7,
                route: "gh".to_owned(),
                settlement: Settlement::Retry {
                    at: 9,
                    error: "503".to_owned(),
                },
            },
            Change::Settle {
                id: 8,
                route: "gh".to_owned(),
                settlement: Settlement::Dead {
                    reason: "gone".to_owned(),
                },
            },
            Change::RetryDeadLetter { id: 3 },
            Change::PurgeDeadLetter { id: 4 },
        ];
        for change in changes {
            let read: Change = serde_json::from_slice(&json(&change)).unwrap();
            assert_eq!(read, change);
        }
    }

    #[test]
    fn frames_are_read_back_in_order_with_their_sequence_time_and_changes() {
        let dir = tempfile::tempdir().unwrap();
        let enqueue = Change::Enqueue {
            route: "gh".to_owned(),
            messages: vec![message("one"), message("two")],
            dedup_key: Some("github:1".to_owned()),
            dedup_window_ms: Some(300_000),
        };
        {
            let (mut journal, frames) = Journal::open(dir.path(), 0).unwrap();
            assert!(frames.is_empty());
            assert_eq!(journal.next_seq(), 1);
            journal.append(100, &[json(&enqueue)], true).unwrap();
            journal
                .append(200, &[json(&change(1)), json(&change(2))], false)
                .unwrap();
            assert_eq!(journal.next_seq(), 3);
        }
        let (journal, frames) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(
            frames,
            [
                Frame {
                    seq: 1,
                    now: 100,
                    changes: vec![enqueue],
                },
                Frame {
                    seq: 2,
                    now: 200,
                    changes: vec![change(1), change(2)],
                },
            ]
        );
        assert_eq!(journal.next_seq(), 3);
    }

    #[test]
    fn a_new_journal_is_its_capacity_of_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, frames) = Journal::open(dir.path(), 0).unwrap();
        assert!(frames.is_empty());
        let bytes = std::fs::read(&journal.path).unwrap();
        assert_eq!(u64::try_from(bytes.len()).unwrap(), CAPACITY);
        assert!(bytes.iter().all(|byte| *byte == 0));
    }

    #[test]
    fn an_interrupted_last_write_ends_the_journal_and_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let first_len = {
            let (mut journal, _) = Journal::open(dir.path(), 0).unwrap();
            journal.append(1, &[json(&change(1))], true).unwrap()
        };
        let path = dir.path().join(JOURNAL_FILE_NAME);
        let whole = std::fs::read(&path).unwrap();
        let torn = encode_frame(2, 2, &[json(&change(2))]);
        for cut in [3, FRAME_HEADER + 5, torn.len() - 1] {
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&torn[..cut], first_len).unwrap();
            let (mut journal, frames) = Journal::open(dir.path(), 0).unwrap();
            assert_eq!(frames.len(), 1, "cut at {cut}");
            journal.append(3, &[json(&change(3))], true).unwrap();
            let (_, frames) = Journal::open(dir.path(), 0).unwrap();
            let seqs: Vec<u64> = frames.iter().map(|frame| frame.seq).collect();
            assert_eq!(seqs, [1, 2], "the torn bytes are overwritten, cut at {cut}");
            std::fs::write(&path, &whole).unwrap();
        }
    }

    #[test]
    fn a_damaged_frame_ends_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let end = {
            let (mut journal, _) = Journal::open(dir.path(), 0).unwrap();
            journal.append(1, &[json(&change(1))], true).unwrap()
                + journal.append(2, &[json(&change(2))], true).unwrap()
        };
        let path = dir.path().join(JOURNAL_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[usize::try_from(end).unwrap() - 2] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let (_, frames) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(frames.len(), 1);
    }

    #[test]
    fn sequence_numbers_continue_after_what_the_database_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 41).unwrap();
        assert_eq!(journal.next_seq(), 42);
        journal.append(1, &[json(&change(1))], true).unwrap();
        assert_eq!(journal.next_seq(), 43);
    }

    #[test]
    fn after_a_commit_new_frames_overwrite_the_old_ones_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 0).unwrap();
        for seq in 1..=3 {
            journal.append(seq, &[json(&change(seq))], true).unwrap();
        }
        journal.checkpointed();
        journal.append(4, &[json(&change(4))], true).unwrap();
        let (_, frames) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(
            frames.iter().map(|frame| frame.seq).collect::<Vec<_>>(),
            [4]
        );
        let size = std::fs::metadata(dir.path().join(JOURNAL_FILE_NAME))
            .unwrap()
            .len();
        assert_eq!(size, CAPACITY, "written in place");
    }

    #[test]
    fn a_batch_larger_than_the_file_grows_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 0).unwrap();
        let large = Change::Enqueue {
            route: "gh".to_owned(),
            messages: Vec::new(),
            dedup_key: Some("k".repeat(usize::try_from(CAPACITY).unwrap())),
            dedup_window_ms: None,
        };
        journal.append(1, &[json(&change(1))], true).unwrap();
        journal.append(2, &[json(&large)], true).unwrap();
        let (_, frames) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].changes, [large]);
    }

    #[test]
    fn undoing_the_last_frame_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, _) = Journal::open(dir.path(), 0).unwrap();
            journal.append(1, &[json(&change(1))], true).unwrap();
            let frame_len = journal.append(2, &[json(&change(2))], true).unwrap();
            journal.undo_last(frame_len);
            assert_eq!(journal.next_seq(), 2);
        }
        let (_, frames) = Journal::open(dir.path(), 0).unwrap();
        assert_eq!(frames.len(), 1);
    }
}
