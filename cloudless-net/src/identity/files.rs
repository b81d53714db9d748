//! Credential files: private material is written with mode 0600 from the first byte.

use std::io::Write;
use std::path::Path;

use super::IdentityError;

/// Writes `bytes` to `path` with permissions 0600 (owner read/write only), replacing any
/// existing file. The file is created with that mode, so the secret is never readable by
/// others, not even briefly; an existing file's mode is reset to 0600 too.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| IdentityError::file(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // `mode` only applies when the file is created; an older file keeps its mode.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| IdentityError::file(path, e))?;
    }
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| IdentityError::file(path, e))
}

/// Writes a public file (certificates) with the default mode.
pub(crate) fn write_public(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    std::fs::write(path, bytes).map_err(|e| IdentityError::file(path, e))
}

/// Reads a file as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|e| IdentityError::file(path, e))
}

/// Refuses a private-key file that others can read.
pub(crate) fn check_private_mode(path: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| IdentityError::file(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(IdentityError::file(
                path,
                format!(
                    "private key is accessible to others (mode {:o}); chmod 600 it",
                    mode & 0o777
                ),
            ));
        }
    }
    Ok(())
}
