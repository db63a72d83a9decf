//! Storage behind a trait, so tests inject faults.
//!
//! Names are relative to the ledger directory and use `/` for the one
//! subdirectory (`quarantine/`). [`FsStorage`] is the real thing (synchronous
//! `std::fs`); [`SimStorage`] is an in-memory disk that models what a crash
//! keeps (durable vs. unsynced writes, torn sectors, directory entries that
//! were never fsynced) and injects fsync errors, ENOSPC and misdirected writes.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An open file, for writing.
pub trait StorageFile: Send {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes every earlier write durable (fdatasync). An error is fatal to the caller.
    fn sync(&mut self) -> io::Result<()>;
    fn set_len(&mut self, length_bytes: u64) -> io::Result<()>;
}

/// A ledger directory.
pub trait Storage: Send + Sync {
    /// File names directly inside `directory` ("" is the ledger directory itself).
    fn list(&self, directory: &str) -> io::Result<Vec<String>>;
    fn exists(&self, name: &str) -> io::Result<bool>;
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    fn size(&self, name: &str) -> io::Result<u64>;
    /// Creates a file that must not exist yet.
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Creates a subdirectory if missing.
    fn create_directory(&self, name: &str) -> io::Result<()>;
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync on the directory).
    fn sync_directory(&self, directory: &str) -> io::Result<()>;
    /// A human-readable description of where the ledger lives.
    fn describe(&self) -> String;
}

/// The real file system.
#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStorage { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    fn path(&self, name: &str) -> PathBuf {
        if name.is_empty() {
            self.root.clone()
        } else {
            self.root.join(name)
        }
    }
}

struct FsFile(std::fs::File);

impl StorageFile for FsFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.0.write_all_at(bytes, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&mut self, length_bytes: u64) -> io::Result<()> {
        self.0.set_len(length_bytes)
    }
}

impl Storage for FsStorage {
    fn list(&self, directory: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.path(directory))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        self.path(name).try_exists()
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(name))
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.path(name))?.len())
    }
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(name))?;
        Ok(Box::new(FsFile(file)))
    }
    fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(name))?;
        Ok(Box::new(FsFile(file)))
    }
    fn create_directory(&self, name: &str) -> io::Result<()> {
        match std::fs::create_dir(self.path(name)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name))
    }
    fn sync_directory(&self, directory: &str) -> io::Result<()> {
        std::fs::File::open(self.path(directory))?.sync_all()
    }
    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

// ---------------------------------------------------------------------------
// Simulated storage with fault injection.

/// Faults to inject, counted in storage operations.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// The process "dies" when this many mutating operations have run: every later one fails.
    pub crash_after_operations: Option<u64>,
    /// The n-th sync (file or directory, counting from 0) fails with EIO; its writes are lost but look written.
    pub failing_sync: Option<u64>,
    /// Writes fail with ENOSPC once the files hold this many bytes in total.
    pub space_bytes_max: Option<u64>,
    /// The n-th write (from 0) lands this many bytes before its intended offset.
    pub misdirected_write: Option<(u64, u64)>,
}

/// What a crash keeps of the writes that were not yet synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Only synced data and synced directory entries survive.
    LoseUnsynced,
    /// Every write reached the disk.
    KeepUnsynced,
    /// Of each file's unsynced writes, the first `n` survive.
    KeepPrefix(usize),
    /// All unsynced writes survive except the last one of each file, which
    /// is cut at the first `sector_bytes` boundary inside it.
    TornLastWrite { sector_bytes: u64 },
    /// Like `TornLastWrite`, but the cut sector holds zeros past the cut.
    TornLastWriteZeroFilled { sector_bytes: u64 },
}

#[derive(Clone, Debug)]
enum PendingOperation {
    Write { offset: u64, bytes: Vec<u8> },
    SetLength(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<PendingOperation>,
}

fn apply(content: &mut Vec<u8>, operation: &PendingOperation) {
    match operation {
        PendingOperation::Write { offset, bytes } => {
            let end = *offset as usize + bytes.len();
            if content.len() < end {
                content.resize(end, 0);
            }
            content[*offset as usize..end].copy_from_slice(bytes);
        }
        PendingOperation::SetLength(length) => content.resize(*length as usize, 0),
    }
}

#[derive(Clone, Debug, Default)]
struct SimState {
    inodes: Vec<Inode>,
    /// Current directory entries: name -> inode.
    entries: BTreeMap<String, usize>,
    /// Entries a crash keeps (synced with `sync_directory`).
    durable_entries: BTreeMap<String, usize>,
    directories: BTreeMap<String, bool>,
    faults: FaultPlan,
    operations: u64,
    syncs: u64,
    writes: u64,
    crashed: bool,
}

impl SimState {
    fn mutate(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(io::Error::other("simulated crash: the process is dead"));
        }
        if let Some(limit) = self.faults.crash_after_operations {
            if self.operations >= limit {
                self.crashed = true;
                return Err(io::Error::other("simulated crash: the process is dead"));
            }
        }
        self.operations += 1;
        Ok(())
    }
    fn total_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|&i| self.inodes[i].current.len() as u64)
            .sum()
    }
    fn inode(&self, name: &str) -> io::Result<usize> {
        self.entries
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file")))
    }
}

/// An in-memory disk shared by clones.
#[derive(Clone, Debug, Default)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

struct SimFile {
    state: Arc<Mutex<SimState>>,
    inode: usize,
}

fn directory_of(name: &str) -> &str {
    match name.rfind('/') {
        Some(i) => &name[..i],
        None => "",
    }
}

impl SimStorage {
    pub fn new() -> Self {
        SimStorage::default()
    }
    pub fn with_faults(faults: FaultPlan) -> Self {
        let storage = SimStorage::default();
        storage.state.lock().unwrap().faults = faults;
        storage
    }
    pub fn set_faults(&self, faults: FaultPlan) {
        let mut state = self.state.lock().unwrap();
        state.faults = faults;
        state.operations = 0;
        state.syncs = 0;
        state.writes = 0;
    }
    /// Mutating operations so far.
    pub fn operations(&self) -> u64 {
        self.state.lock().unwrap().operations
    }
    /// The disk as a crash right now would leave it, as a fresh storage without faults.
    pub fn crash(&self, mode: CrashMode) -> SimStorage {
        let state = self.state.lock().unwrap();
        let mut after = SimState {
            directories: state.directories.clone(),
            ..SimState::default()
        };
        for inode in &state.inodes {
            let mut content = inode.durable.clone();
            match mode {
                CrashMode::LoseUnsynced => {}
                CrashMode::KeepUnsynced => content = inode.current.clone(),
                CrashMode::KeepPrefix(n) => inode
                    .pending
                    .iter()
                    .take(n)
                    .for_each(|op| apply(&mut content, op)),
                CrashMode::TornLastWrite { sector_bytes }
                | CrashMode::TornLastWriteZeroFilled { sector_bytes } => {
                    let zero_fill = matches!(mode, CrashMode::TornLastWriteZeroFilled { .. });
                    let count = inode.pending.len();
                    for (i, op) in inode.pending.iter().enumerate() {
                        match op {
                            PendingOperation::Write { offset, bytes } if i + 1 == count => {
                                let boundary = (offset / sector_bytes + 1) * sector_bytes;
                                let keep = (boundary - offset).min(bytes.len() as u64) as usize;
                                let keep = if keep == bytes.len() { keep / 2 } else { keep };
                                apply(
                                    &mut content,
                                    &PendingOperation::Write {
                                        offset: *offset,
                                        bytes: bytes[..keep].to_vec(),
                                    },
                                );
                                if zero_fill && keep < bytes.len() {
                                    let fill = (bytes.len() - keep).min(sector_bytes as usize);
                                    apply(
                                        &mut content,
                                        &PendingOperation::Write {
                                            offset: offset + keep as u64,
                                            bytes: vec![0; fill],
                                        },
                                    );
                                }
                            }
                            other => apply(&mut content, other),
                        }
                    }
                }
            }
            after.inodes.push(Inode {
                durable: content.clone(),
                current: content,
                pending: Vec::new(),
            });
        }
        after.entries = if mode == CrashMode::LoseUnsynced {
            state.durable_entries.clone()
        } else {
            state.entries.clone()
        };
        after.durable_entries = after.entries.clone();
        SimStorage {
            state: Arc::new(Mutex::new(after)),
        }
    }
    /// Overwrites bytes of a file as a tamperer would (durably, no fault accounting).
    pub fn tamper_write(&self, name: &str, offset: u64, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap();
        let inode = state.inode(name).expect("tamper_write: file exists");
        let op = PendingOperation::Write {
            offset,
            bytes: bytes.to_vec(),
        };
        apply(&mut state.inodes[inode].current, &op);
        apply(&mut state.inodes[inode].durable, &op);
    }
    /// Replaces a file's whole content durably.
    pub fn tamper_replace(&self, name: &str, content: Vec<u8>) {
        let mut state = self.state.lock().unwrap();
        let inode = match state.entries.get(name) {
            Some(&i) => i,
            None => {
                state.inodes.push(Inode::default());
                let i = state.inodes.len() - 1;
                state.entries.insert(name.to_string(), i);
                state.durable_entries.insert(name.to_string(), i);
                i
            }
        };
        state.inodes[inode] = Inode {
            durable: content.clone(),
            current: content,
            pending: Vec::new(),
        };
    }
    pub fn tamper_remove(&self, name: &str) {
        let mut state = self.state.lock().unwrap();
        state.entries.remove(name);
        state.durable_entries.remove(name);
    }
    pub fn tamper_rename(&self, from: &str, to: &str) {
        let mut state = self.state.lock().unwrap();
        let inode = state
            .entries
            .remove(from)
            .expect("tamper_rename: file exists");
        state.durable_entries.remove(from);
        state.entries.insert(to.to_string(), inode);
        state.durable_entries.insert(to.to_string(), inode);
    }
    /// A deep copy (independent disk).
    pub fn snapshot(&self) -> SimStorage {
        self.crash(CrashMode::KeepUnsynced)
    }
}

impl StorageFile for SimFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.mutate()?;
        if let Some(limit) = state.faults.space_bytes_max {
            let current = state.inodes[self.inode].current.len() as u64;
            let growth = (offset + bytes.len() as u64).saturating_sub(current);
            if state.total_bytes() + growth > limit {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
        }
        let mut offset = offset;
        if let Some((n, distance)) = state.faults.misdirected_write {
            if state.writes == n {
                offset = offset.saturating_sub(distance);
            }
        }
        state.writes += 1;
        let op = PendingOperation::Write {
            offset,
            bytes: bytes.to_vec(),
        };
        let inode = &mut state.inodes[self.inode];
        apply(&mut inode.current, &op);
        inode.pending.push(op);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.mutate()?;
        let n = state.syncs;
        state.syncs += 1;
        let failing = Some(n) == state.faults.failing_sync;
        let inode = &mut state.inodes[self.inode];
        if failing {
            // The kernel drops the dirty pages and marks them clean.
            inode.pending.clear();
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        inode.durable = inode.current.clone();
        inode.pending.clear();
        Ok(())
    }
    fn set_len(&mut self, length_bytes: u64) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.mutate()?;
        let op = PendingOperation::SetLength(length_bytes);
        let inode = &mut state.inodes[self.inode];
        apply(&mut inode.current, &op);
        inode.pending.push(op);
        Ok(())
    }
}

impl Storage for SimStorage {
    fn list(&self, directory: &str) -> io::Result<Vec<String>> {
        let state = self.state.lock().unwrap();
        if !directory.is_empty() && !state.directories.contains_key(directory) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        Ok(state
            .entries
            .keys()
            .filter(|name| directory_of(name) == directory)
            .map(|name| name.rsplit('/').next().unwrap_or(name).to_string())
            .collect())
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        let state = self.state.lock().unwrap();
        Ok(state.entries.contains_key(name) || state.directories.contains_key(name))
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let state = self.state.lock().unwrap();
        Ok(state.inodes[state.inode(name)?].current.clone())
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        let state = self.state.lock().unwrap();
        Ok(state.inodes[state.inode(name)?].current.len() as u64)
    }
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.state.lock().unwrap();
        state.mutate()?;
        if state.entries.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{name} exists"),
            ));
        }
        let directory = directory_of(name);
        if !directory.is_empty() && !state.directories.contains_key(directory) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        state.inodes.push(Inode::default());
        let inode = state.inodes.len() - 1;
        state.entries.insert(name.to_string(), inode);
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            inode,
        }))
    }
    fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let state = self.state.lock().unwrap();
        let inode = state.inode(name)?;
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            inode,
        }))
    }
    fn create_directory(&self, name: &str) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.mutate()?;
        state.directories.insert(name.to_string(), true);
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.mutate()?;
        let inode = state.inode(from)?;
        state.entries.remove(from);
        state.entries.insert(to.to_string(), inode);
        Ok(())
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.mutate()?;
        state.inode(name)?;
        state.entries.remove(name);
        Ok(())
    }
    fn sync_directory(&self, directory: &str) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.mutate()?;
        let n = state.syncs;
        state.syncs += 1;
        if Some(n) == state.faults.failing_sync {
            return Err(io::Error::from_raw_os_error(5));
        }
        let in_directory = |name: &String| directory_of(name) == directory;
        state.durable_entries.retain(|name, _| !in_directory(name));
        let kept: Vec<(String, usize)> = state
            .entries
            .iter()
            .filter(|(name, _)| in_directory(name))
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        state.durable_entries.extend(kept);
        Ok(())
    }
    fn describe(&self) -> String {
        "simulated storage".to_string()
    }
}
