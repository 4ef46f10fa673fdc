//! [`FsModelStore`]: model artifacts as files under a root directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::key::{MAX_KEY_LEN, TEMP_PREFIX, is_key_segment};
use super::{ModelStore, StorageError, validate_key};

/// Distinguishes the temporary files of concurrent `put`s within this process (the process
/// id distinguishes processes; `create_new` catches the rest).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unavailable(what: &str, path: &Path, err: &io::Error) -> StorageError {
    StorageError::Unavailable(format!("{what} `{}`: {err}", path.display()))
}

/// Makes the entries of directory `dir` durable (fsync of the directory). A no-op where
/// directories cannot be opened as files (Windows).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Model artifacts stored as files under a root directory: key `a/b/c` is the file
/// `ROOT/a/b/c`.
///
/// * `put` is atomic and durable: the bytes go to a temporary file in the key's directory,
///   which is fsynced, renamed over the key and the directory fsynced (with any directory
///   `put` created). A crash leaves either the old or the new bytes under the key, never a
///   mix; it may leave a `.tmp-cgsoc-*` file behind, which `list` and `get` ignore (it can be
///   deleted by hand). Concurrent `put`s of one key are safe: the last rename wins.
/// * Keys follow [`validate_key`](super::validate_key), so a key is always a safe relative
///   path below the root. Since a key is a file, a key cannot also be a directory of
///   other keys: with `a/b` stored, `put("a")` (and with `a` stored, `put("a/b")`) fails with
///   [`StorageError::Conflict`], and `get("a")` is [`StorageError::NotFound`].
/// * `list` walks the tree iteratively, skips temporary files, symbolic links and names that
///   are not valid key components, and returns `/`-separated keys, sorted.
/// * `delete` of a missing key is not an error (as the [`ModelStore`] contract says); it leaves
///   empty directories in place (harmless: `list` only reports files).
/// * Keys are file names: on a case-insensitive filesystem `a` and `A` are the same key.
///
/// The methods are `async` to implement [`ModelStore`] but use blocking `std::fs` calls, so
/// they block the calling thread for the duration of the I/O (including fsync). That is fine
/// for the rare model reads and writes this store serves; on an async server, call it from a
/// blocking pool (`spawn_blocking`) if that matters.
#[derive(Debug, Clone)]
pub struct FsModelStore {
    root: PathBuf,
}

impl FsModelStore {
    /// A store rooted at `root`, created (with its parents) if missing.
    ///
    /// Fails with [`StorageError::Unavailable`] if the directory cannot be created or `root`
    /// exists but is not a directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| unavailable("cannot create model directory", &root, &e))?;
        if !root.is_dir() {
            return Err(StorageError::Unavailable(format!(
                "model store root `{}` is not a directory",
                root.display()
            )));
        }
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a key already checked by [`validate_key`].
    fn path_of(&self, key: &str) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.split('/'));
        path
    }

    /// Creates the directories of `key` (all components but the last) that are missing and
    /// returns them, outermost first.
    fn create_parent_dirs(&self, key: &str) -> Result<Vec<PathBuf>, StorageError> {
        let mut created = Vec::new();
        let mut dir = self.root.clone();
        let mut components = key.split('/');
        components.next_back();
        for component in components {
            dir.push(component);
            match fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::AlreadyExists | ErrorKind::NotADirectory
                    ) =>
                {
                    return Err(StorageError::Conflict(format!(
                        "cannot store `{key}`: a key is stored where one of its directories \
                         would be"
                    )));
                }
                Err(e) => return Err(unavailable("cannot create directory", &dir, &e)),
            }
        }
        Ok(created)
    }

    /// Creates a new, empty temporary file in `dir`.
    fn create_temp(dir: &Path) -> Result<(PathBuf, File), StorageError> {
        let pid = std::process::id();
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{TEMP_PREFIX}{pid}-{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((path, file)),
                // A leftover of an earlier process with the same id: try the next name.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(unavailable("cannot create temporary file", &path, &e)),
            }
        }
    }

    fn put_blocking(&self, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
        validate_key(key)?;
        let path = self.path_of(key);
        let created = self.create_parent_dirs(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        let (temp, mut file) = Self::create_temp(dir)?;

        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(unavailable("cannot write", &temp, &e));
        }
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(match e.kind() {
                ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty => StorageError::Conflict(
                    format!("cannot store `{key}`: it is a directory holding other keys"),
                ),
                _ => unavailable("cannot rename temporary file to", &path, &e),
            });
        }
        // Make the rename durable, then the entries of any directory created above.
        sync_dir(dir).map_err(|e| unavailable("cannot sync directory", dir, &e))?;
        for created_dir in created.iter().rev() {
            let parent = created_dir.parent().unwrap_or(&self.root);
            sync_dir(parent).map_err(|e| unavailable("cannot sync directory", parent, &e))?;
        }
        Ok(())
    }

    fn get_blocking(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        validate_key(key)?;
        let path = self.path_of(key);
        fs::read(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::IsADirectory | ErrorKind::NotADirectory => {
                StorageError::NotFound(key.to_owned())
            }
            _ => unavailable("cannot read", &path, &e),
        })
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        // Start the walk at the deepest directory the prefix names in full.
        let (mut stack, start_exists_required) = match prefix.rsplit_once('/') {
            Some((dir, _)) if validate_key(dir).is_ok() => {
                (vec![(self.path_of(dir), format!("{dir}/"))], false)
            }
            // `a//b`, `../x`, `/x`, ...: no valid key starts with such a prefix.
            Some(_) => return Ok(Vec::new()),
            None => (vec![(self.root.clone(), String::new())], true),
        };
        let mut keys = Vec::new();
        let mut first = true;
        while let Some((dir, key_prefix)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                // Missing (or deleted meanwhile): nothing under it. The root itself must exist.
                Err(e)
                    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
                        && !(first && start_exists_required) =>
                {
                    first = false;
                    continue;
                }
                Err(e) => return Err(unavailable("cannot list", &dir, &e)),
            };
            first = false;
            for entry in entries {
                let entry = entry.map_err(|e| unavailable("cannot list", &dir, &e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !is_key_segment(name) {
                    continue;
                }
                let key = format!("{key_prefix}{name}");
                if key.len() > MAX_KEY_LEN {
                    continue;
                }
                let file_type = entry
                    .file_type()
                    .map_err(|e| unavailable("cannot stat", &entry.path(), &e))?;
                if file_type.is_dir() {
                    let sub_prefix = format!("{key}/");
                    if sub_prefix.starts_with(prefix) || prefix.starts_with(&sub_prefix) {
                        stack.push((entry.path(), sub_prefix));
                    }
                } else if file_type.is_file() && key.starts_with(prefix) {
                    keys.push(key);
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    fn delete_blocking(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                let dir = path.parent().unwrap_or(&self.root);
                sync_dir(dir).map_err(|e| unavailable("cannot sync directory", dir, &e))
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(()),
            // A directory of other keys is not a key: nothing to delete.
            Err(_) if path.is_dir() => Ok(()),
            Err(e) => Err(unavailable("cannot delete", &path, &e)),
        }
    }
}

#[async_trait]
impl ModelStore for FsModelStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.put_blocking(key, &bytes)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        self.get_blocking(key)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.list_blocking(prefix)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.delete_blocking(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "soc-core-fs-unit-{}-{n}-{name}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn put_skips_temp_names_left_by_an_earlier_process_with_our_pid() {
        let dir = TempDir::new("collide");
        let store = FsModelStore::new(&dir.0).unwrap();
        // Squat on the next few temporary names this process would use.
        let next = TEMP_COUNTER.load(Ordering::Relaxed);
        let pid = std::process::id();
        for n in next..next + 4 {
            fs::write(dir.0.join(format!("{TEMP_PREFIX}{pid}-{n}")), b"half").unwrap();
        }
        store.put_blocking("k", b"whole").unwrap();
        assert_eq!(store.get_blocking("k").unwrap(), b"whole");
        assert_eq!(store.list_blocking("").unwrap(), ["k"]);
    }

    #[test]
    fn put_leaves_no_temporary_file_behind() {
        let dir = TempDir::new("clean");
        let store = FsModelStore::new(&dir.0).unwrap();
        store.put_blocking("a/b/c", b"1").unwrap();
        store.put_blocking("a/b/c", b"2").unwrap();
        let names: Vec<_> = fs::read_dir(dir.0.join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["c"]);
    }

    #[test]
    fn list_requires_the_root_to_exist() {
        let dir = TempDir::new("gone");
        let store = FsModelStore::new(&dir.0).unwrap();
        fs::remove_dir_all(&dir.0).unwrap();
        assert!(matches!(
            store.list_blocking(""),
            Err(StorageError::Unavailable(_))
        ));
        // Below the root, a missing directory just means no keys.
        assert_eq!(store.list_blocking("x/"), Ok(Vec::new()));
    }
}
