//! Which UID/GID a container runs as.

use cloudless_core::workload::SecurityContext;

use super::SpecError;

/// An image's `User` field parsed: `uid`, `uid:gid`, or `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageUser {
    /// UID.
    pub uid: u32,
    /// GID, when given.
    pub gid: Option<u32>,
}

impl ImageUser {
    /// Parses the image config's `User`; `None` for empty. Names other than `root` cannot be
    /// resolved without the image's `/etc/passwd` and are refused.
    pub fn parse(user: &str) -> Result<Option<Self>, SpecError> {
        let user = user.trim();
        if user.is_empty() {
            return Ok(None);
        }
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user, None),
        };
        let id = |s: &str| match s {
            "root" => Some(0),
            _ => s.parse::<u32>().ok(),
        };
        let uid = id(u).ok_or_else(|| SpecError::NamedUser(user.to_owned()))?;
        let gid = match g {
            Some(g) => Some(id(g).ok_or_else(|| SpecError::NamedUser(user.to_owned()))?),
            None => None,
        };
        Ok(Some(Self { uid, gid }))
    }
}

/// The UID and GID: the security context first, then the image, then root. A GID defaults to the
/// UID's number when only a UID is known (there is no passwd lookup).
pub(super) fn resolve(
    sec: &SecurityContext,
    image_user: Option<&str>,
) -> Result<(u32, u32), SpecError> {
    let image = match (sec.run_as_user, image_user) {
        // An explicit runAsUser makes the image's user irrelevant, even if it is a name.
        (Some(_), _) | (None, None) => None,
        (None, Some(u)) => ImageUser::parse(u)?,
    };
    let uid = sec.run_as_user.or(image.map(|i| i.uid)).unwrap_or(0);
    let gid = sec
        .run_as_group
        .or(image.and_then(|i| i.gid))
        .unwrap_or(uid);
    Ok((uid, gid))
}
