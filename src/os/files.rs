//! A file read again and again through a descriptor of its directory, opened once at start-up:
//! the path keeps working after `chroot`, and a file replaced by a rename is found as it is
//! now, not as it was.
//!
//! A read is `openat(dirfd, name, O_RDONLY|O_CLOEXEC)`, `fstat`, `read` until the end, and
//! `close`: nothing else, so a system call filter can allow exactly these.

use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file named by its directory's descriptor and its name in it.
#[derive(Debug)]
pub struct DirFile {
    /// The path as given, for messages.
    path: PathBuf,
    /// `O_PATH|O_DIRECTORY`: it can name files, not read them.
    dir: OwnedFd,
    name: CString,
}

impl DirFile {
    /// Opens the directory of `path` (the current one for a bare name). The file itself need
    /// not exist yet.
    pub fn open(path: &Path) -> io::Result<DirFile> {
        let name = match path.file_name() {
            Some(name) => name,
            None => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
        };
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(parent)?;
        Ok(DirFile {
            path: path.to_path_buf(),
            dir: dir.into(),
            name: c_name(name)?,
        })
    }

    /// The directory's descriptor (`O_PATH`), for the sandbox's rules.
    pub fn dir_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.dir)
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's whole content, when it is a regular file of at most `limit` bytes;
    /// `FileTooLarge` past that, `InvalidInput` for anything but a regular file.
    pub fn read(&self, limit: usize) -> io::Result<Vec<u8>> {
        // SAFETY: a valid directory descriptor and a NUL-terminated name; the descriptor
        // returned is owned by the `File` at once.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                self.name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let mut file = unsafe { File::from_raw_fd(fd) };
        let mut stat = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `fd` is open and `stat` is large enough for what fstat writes.
        if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstat succeeded, so it filled `stat`.
        let stat = unsafe { stat.assume_init() };
        if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let size = usize::try_from(stat.st_size).unwrap_or(usize::MAX);
        let mut content = Vec::with_capacity(size.min(limit) + 1);
        // `read` until the end (the file may grow meanwhile): one byte past the limit says
        // it is too large.
        let mut chunk = [0u8; 8192];
        loop {
            let n = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            content.extend_from_slice(&chunk[..n]);
            if content.len() > limit {
                return Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    format!("larger than {limit} bytes"),
                ));
            }
        }
        Ok(content)
    }
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oneloop-files-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_renamed_file_is_read_as_it_is_now() {
        let dir = scratch("rename");
        let path = dir.join("list");
        std::fs::write(&path, "old\n").unwrap();
        let file = DirFile::open(&path).unwrap();
        assert_eq!(file.read(100).unwrap(), b"old\n");
        std::fs::write(dir.join("list.new"), "new\n").unwrap();
        std::fs::rename(dir.join("list.new"), &path).unwrap();
        assert_eq!(file.read(100).unwrap(), b"new\n");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.read(100).unwrap_err().kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn too_large_files_and_directories_are_refused() {
        let dir = scratch("limits");
        std::fs::write(dir.join("big"), [b'#'; 101]).unwrap();
        std::fs::write(dir.join("fits"), [b'#'; 100]).unwrap();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let read = |name: &str| DirFile::open(&dir.join(name)).unwrap().read(100);
        assert_eq!(read("big").unwrap_err().kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(read("fits").unwrap().len(), 100);
        assert_eq!(read("sub").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(DirFile::open(&dir.join("nowhere/list")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
