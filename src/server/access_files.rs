//! The access files (`--allow-file`, `--deny-file`): their directories opened once, before any
//! `chroot`, and every file read whole into one set of entries with the flags' own, at start
//! and on each `SIGHUP`.

use std::path::PathBuf;

use crate::os::files::DirFile;
use crate::policy::access::Cidr;
use crate::policy::lists::{self, Entries};

/// Every access file, and the entries of `--allow` and `--deny` they are added to.
#[derive(Debug)]
pub(crate) struct AccessFiles {
    /// Each file with whether it lists sources to deny.
    files: Vec<(DirFile, bool)>,
    flags: Entries,
}

impl AccessFiles {
    /// Opens the directory of every file of `allow_files` and `deny_files`; the error names
    /// the flag, the file and the reason.
    pub(crate) fn open(
        allow: &[Cidr],
        deny: &[Cidr],
        allow_files: &[PathBuf],
        deny_files: &[PathBuf],
    ) -> Result<AccessFiles, String> {
        let named = allow_files
            .iter()
            .map(|path| (path, false))
            .chain(deny_files.iter().map(|path| (path, true)));
        let mut files = Vec::with_capacity(allow_files.len() + deny_files.len());
        for (path, denies) in named {
            let file = DirFile::open(path).map_err(|e| {
                format!(
                    "{} {}: cannot open its directory: {}",
                    flag(denies),
                    path.display(),
                    crate::os::sockets::reason(&e)
                )
            })?;
            files.push((file, denies));
        }
        let flags = Entries {
            allow: allow.to_vec(),
            deny: deny.to_vec(),
        };
        Ok(AccessFiles { files, flags })
    }

    /// The directories' descriptors: a reload opens files relative to these alone.
    pub(crate) fn dir_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.files.iter().map(|(file, _)| file.dir_fd()).collect()
    }

    /// Whether there is any file to read.
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The flags' entries and every file's, or why a file cannot be used: the flag, the file
    /// and its line, or the reason it cannot be read.
    pub(crate) fn load(&self) -> Result<Entries, String> {
        let mut entries = self.flags.clone();
        for (file, denies) in &self.files {
            let name = || format!("{} {}", flag(*denies), file.path().display());
            let text = file.read(lists::MAX_FILE_BYTES).map_err(|e| {
                format!(
                    "{}: cannot read: {}",
                    name(),
                    crate::os::sockets::reason(&e)
                )
            })?;
            let networks = lists::parse(&text)
                .map_err(|bad| format!("{}, line {}: {}", name(), bad.line, bad.why))?;
            match denies {
                true => entries.deny.extend(networks),
                false => entries.allow.extend(networks),
            }
        }
        Ok(entries)
    }
}

fn flag(denies: bool) -> &'static str {
    if denies {
        "--deny-file"
    } else {
        "--allow-file"
    }
}
