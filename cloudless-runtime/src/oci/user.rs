//! Which UID/GID a container runs as.

use cloudless_core::workload::SecurityContext;

use super::SpecError;
use super::accounts::Accounts;

/// An image's `User` field parsed: `uid`, `uid:gid`, or `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageUser {
    /// UID.
    pub uid: u32,
    /// GID, when given.
    pub gid: Option<u32>,
}

/// A numeric id (or `root`, which is 0 everywhere).
fn numeric(s: &str) -> Option<u32> {
    match s {
        "root" => Some(0),
        _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<u32>().ok(),
        _ => None,
    }
}

impl ImageUser {
    /// Parses the image config's `User` without the image's files; `None` for empty. Names
    /// other than `root` are refused (see [`ImageUser::resolve`]).
    pub fn parse(user: &str) -> Result<Option<Self>, SpecError> {
        Self::resolve(user, None, "")
    }

    /// Parses the image config's `User` (`user`, `user:group`; each a number or a name),
    /// resolving names through `accounts` (the image's `/etc/passwd` and `/etc/group`). A user
    /// given by name without a group runs with its primary group. `image` names the image in
    /// errors. `None` for empty.
    pub fn resolve(
        user: &str,
        accounts: Option<&Accounts>,
        image: &str,
    ) -> Result<Option<Self>, SpecError> {
        let user = user.trim();
        if user.is_empty() {
            return Ok(None);
        }
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user, None),
        };
        let named = |what: &str| match accounts {
            None => SpecError::NamedUser(user.to_owned()),
            Some(_) => SpecError::UnknownAccount {
                kind: what.to_owned(),
                name: if what == "user" { u } else { g.unwrap_or(u) }.to_owned(),
                image: image.to_owned(),
            },
        };
        let (uid, primary) = match numeric(u) {
            Some(uid) => (uid, None),
            None => accounts
                .and_then(|a| a.user(u))
                .map(|(uid, gid)| (uid, Some(gid)))
                .ok_or_else(|| named("user"))?,
        };
        let gid = match g {
            Some(g) => Some(
                numeric(g)
                    .or_else(|| accounts.and_then(|a| a.group(g)))
                    .ok_or_else(|| named("group"))?,
            ),
            None => primary,
        };
        Ok(Some(Self { uid, gid }))
    }
}

/// Whether the image's `user` needs the image's account files to resolve: it is used (no
/// `runAsUser`) and names a user or group other than `root`.
pub fn needs_accounts(sec: &SecurityContext, image_user: Option<&str>) -> bool {
    match (sec.run_as_user, image_user) {
        (None, Some(u)) => u
            .trim()
            .split(':')
            .any(|part| !part.is_empty() && numeric(part).is_none()),
        _ => false,
    }
}

/// The UID and GID: the security context first, then the image (names resolved through
/// `accounts`), then root. A GID defaults to the named user's primary group, else to the UID's
/// number.
pub(super) fn resolve(
    sec: &SecurityContext,
    image_user: Option<&str>,
    accounts: Option<&Accounts>,
    image: &str,
) -> Result<(u32, u32), SpecError> {
    let image = match (sec.run_as_user, image_user) {
        // An explicit runAsUser makes the image's user irrelevant, even if it is a name.
        (Some(_), _) | (None, None) => None,
        (None, Some(u)) => ImageUser::resolve(u, accounts, image)?,
    };
    let uid = sec.run_as_user.or(image.map(|i| i.uid)).unwrap_or(0);
    let gid = sec
        .run_as_group
        .or(image.and_then(|i| i.gid))
        .unwrap_or(uid);
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::parse(
            "root:x:0:0::/:\ntoor:x:0:0::/:\napp:x:1234:2345::/:\n",
            "root:x:0:\nstaff:x:3456:\n",
        )
    }

    fn sec(run_as_user: Option<u32>, run_as_group: Option<u32>) -> SecurityContext {
        SecurityContext {
            run_as_user,
            run_as_group,
            ..SecurityContext::default()
        }
    }

    #[test]
    fn names_resolve_through_the_image_files() {
        let a = accounts();
        let r = |u: &str| resolve(&sec(None, None), Some(u), Some(&a), "img");
        assert_eq!(r("app").expect("app"), (1234, 2345), "primary group");
        assert_eq!(r("app:staff").expect("app:staff"), (1234, 3456));
        assert_eq!(r("app:7").expect("app:7"), (1234, 7));
        assert_eq!(r("55:staff").expect("55:staff"), (55, 3456));
        assert_eq!(r("toor").expect("toor"), (0, 0));
        assert_eq!(r("42").expect("42"), (42, 42), "numeric: gid = uid");
        let e = r("ghost").expect_err("unknown user").to_string();
        assert!(
            e.contains("\"ghost\"") && e.contains("img") && e.contains("user"),
            "{e}"
        );
        let e = r("app:nogroup").expect_err("unknown group").to_string();
        assert!(e.contains("\"nogroup\"") && e.contains("group"), "{e}");
        // The security context wins over the image, names and all.
        assert_eq!(
            resolve(&sec(Some(9), Some(10)), Some("ghost"), Some(&a), "img").expect("ctx"),
            (9, 10)
        );
        assert_eq!(
            resolve(&sec(None, Some(10)), Some("app"), Some(&a), "img").expect("group"),
            (1234, 10)
        );
    }

    #[test]
    fn without_the_files_names_are_refused() {
        assert!(matches!(
            resolve(&sec(None, None), Some("app"), None, "img"),
            Err(SpecError::NamedUser(_))
        ));
        assert_eq!(
            ImageUser::parse("root:0").expect("root"),
            Some(ImageUser {
                uid: 0,
                gid: Some(0)
            })
        );
        assert_eq!(ImageUser::parse(" ").expect("empty"), None);
        assert!(ImageUser::parse("+5").is_err(), "digits only");
    }

    #[test]
    fn which_users_need_the_files() {
        let none = sec(None, None);
        for (user, needs) in [
            ("app", true),
            ("1000:staff", true),
            ("app:10", true),
            ("root", false),
            ("1000", false),
            ("1000:1000", false),
            ("root:root", false),
            ("", false),
        ] {
            assert_eq!(needs_accounts(&none, Some(user)), needs, "{user:?}");
        }
        assert!(!needs_accounts(&sec(Some(1), None), Some("app")));
        assert!(!needs_accounts(&none, None));
    }
}
