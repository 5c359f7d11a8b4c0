//! Small file-system helpers shared by every layer.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Write a file atomically: a temporary file beside it, fsync, rename, fsync the directory.
/// Readers see the old content or the new, never a mix; a crash leaves at most a stray
/// `.tmp-*` file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o666)
}

/// [`write_atomic`] for a file only its owner may read (0600 on Unix), created with that mode.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// The temporary file is created new (never through a link left at its name, which is removed
/// first) with `mode` (less the umask); the rename replaces a link at `path` rather than
/// following it.
fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    {
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = o.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// fsync a directory so that a rename inside it is durable (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Create a directory and any missing parents, each new one readable by its owner only (0700 on
/// Unix). Directories that already exist keep their mode: mixscope never changes the
/// permissions of a directory it did not create (a shared runs root, `/tmp`).
pub fn create_private_dir(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(|e| dir_error(path, e))
}

/// Create one new directory (its parent must exist), readable by its owner only. Fails when it
/// already exists: two processes creating the same directory never both succeed.
pub fn create_new_private_dir(path: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// A directory that cannot be created: permission problems are the user's to fix (bad input).
pub fn dir_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        crate::error::bad_input(format!("creating {}: permission denied", path.display()))
    } else {
        anyhow::Error::new(e).context(format!("creating {}", path.display()))
    }
}

/// Open a file for appending, creating it with mode 0600. A symbolic link at `path` is not
/// followed: it is an error ([`link_error`]). Every file mixscope appends to is in a run
/// directory (events, logs, TensorBoard files).
pub fn open_append_private(path: &Path) -> Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    open_nofollow(&mut o, path)
}

/// Open with `O_NOFOLLOW` (on Unix): a symbolic link at `path` is refused with [`link_error`].
pub fn open_nofollow(o: &mut OpenOptions, path: &Path) -> Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    match o.open(path) {
        Ok(f) => Ok(f),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(link_error(path)),
        Err(e) => Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    }
}

/// A symbolic link where a run directory's own file or directory belongs: mixscope does not
/// write through it (bad input: the user's to remove).
pub fn link_error(path: &Path) -> anyhow::Error {
    crate::error::bad_input(format!(
        "{}: is a symbolic link; mixscope does not follow links inside a run directory (replace it with the file or directory itself)",
        path.display()
    ))
}

/// Whether `path` is a symbolic link (false when it does not exist).
pub fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// A directory inside a run directory (`checkpoints/`, `tensorboard/`): created (private) when
/// missing; a symbolic link there is refused ([`link_error`]), as is a file.
pub fn ensure_real_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(link_error(path)),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(crate::error::bad_input(format!("{}: is a file, not a directory", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create_new_private_dir(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ensure_real_dir(path),
            Err(e) => Err(dir_error(path, e)),
        },
        Err(e) => Err(anyhow::Error::new(e).context(format!("looking at {}", path.display()))),
    }
}

/// This machine's CPU cores (at least 1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The most CPU threads a run may ask for: 4 × this machine's cores (more only spawns threads
/// that wait for a core, for minutes at start-up).
pub fn max_threads() -> usize {
    cores() * 4
}

/// Seconds since the Unix epoch, as a float.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A short hex digest of some bytes (SHA-256, first 8 bytes).
pub fn short_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    crate::data::assets::hex(&Sha256::digest(bytes)[..8])
}
