//! Output files that appear whole or not at all, and outputs that must not be inputs.
//!
//! An [`AtomicFile`] is written under a hidden temporary name in the target's folder and renamed
//! over the target by [`AtomicFile::commit`]: a failure, a crash, SIGINT or a full disk never
//! leaves a truncated file under the requested name, and an existing file is replaced only by a
//! complete one (the rename is atomic within a file system). Dropped without a commit, the
//! temporary file is removed.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A file being written in place of `target` (see the module docs).
#[derive(Debug)]
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl AtomicFile {
    /// Starts writing `target`: a temporary file `.<name>.<random><.ext>` beside it (keeping the
    /// extension last, for writers that choose the format by it), created with mode 0644 less
    /// the umask, as `File::create` would.
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let suffix = target
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let prefix = format!(".{}.", name.to_string_lossy());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(&suffix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        Ok(AtomicFile {
            tmp: builder.tempfile_in(dir)?,
            target: target.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// The temporary file's path, for writers that open the path themselves.
    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Flushes the file to disk and renames it over the target.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Writes `bytes` to `path` through an [`AtomicFile`].
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use io::Write;
    let file = AtomicFile::create(path)?;
    file.file().write_all(bytes)?;
    file.commit()
}

/// `Err` naming `what` and the input when `output` is (resolves to the same file as) one of
/// `inputs`; each input is `(flag or role, path)`. An output that does not exist yet is compared
/// through its folder's canonical path.
pub fn check_not_input(what: &str, output: &Path, inputs: &[(&str, &Path)]) -> Result<(), String> {
    let resolved = resolve(output);
    for (role, input) in inputs {
        if resolved.is_some() && resolve(input) == resolved {
            return Err(format!(
                "{what} {} is the same file as {role} {}: refusing to overwrite an input",
                output.display(),
                input.display()
            ));
        }
    }
    Ok(())
}

/// The canonical path of `path`, or of its folder joined with its name when it does not exist.
fn resolve(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_a_committed_file_appears_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        std::fs::write(&target, "old").unwrap();
        {
            let file = AtomicFile::create(&target).unwrap();
            assert!(file.temp_path().to_string_lossy().ends_with(".csv"));
            file.file().write_all(b"partial").unwrap();
            // dropped without commit: the old file stays, the temporary one goes
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_output_that_is_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "x").unwrap();
        let same = dir.path().join(".").join("in.csv");
        let err = check_not_input("--output", &same, &[("--input", &input)]).unwrap_err();
        assert!(err.contains("--input") && err.contains("in.csv"), "{err}");
        let other = dir.path().join("out.csv");
        assert!(check_not_input("--output", &other, &[("--input", &input)]).is_ok());
    }
}
