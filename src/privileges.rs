//! Least privilege: once the device (and any `-w` file) is open, everything parsed comes
//! from the network, so a process started as root becomes an unprivileged user, as tcpdump
//! does with `-Z`.

use std::ffi::CString;

use anyhow::{Result, bail};

/// The user a root process becomes when `-Z` is not given.
pub const DEFAULT_USER: &str = "nobody";

/// Drops root for `user` (`DEFAULT_USER` if `None`); `root` keeps it. Returns the user
/// now running, or `None` when the process was not root and nothing changed.
pub fn drop_root(user: Option<&str>) -> Result<Option<String>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let Some((name, uid, gid)) = user_to_become(user)? else {
        return Ok(Some("root".to_string()));
    };
    // SAFETY: plain system calls on integers; order matters: groups and gid while still root.
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
    };
    // SAFETY: as above.
    if failed || unsafe { libc::getuid() != uid || libc::geteuid() != uid } {
        bail!(
            "-Z {name}: cannot change to this user ({})",
            std::io::Error::last_os_error()
        );
    }
    Ok(Some(name.to_string()))
}

/// Started as root: makes `dir` owned by the user `drop_root(user)` will become, so that
/// files can still be made in it afterwards (as tcpdump hands its `-w` file over).
/// Nothing to do when not root or keeping root.
pub fn hand_over(dir: &std::path::Path, user: Option<&str>) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let Some((name, uid, gid)) = user_to_become(user)? else {
        return Ok(());
    };
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(|e| anyhow::anyhow!("{}: cannot hand it to {name} ({e})", dir.display()))
}

/// The user a root process becomes for `user` (`DEFAULT_USER` if `None`), with its uid
/// and gid; `None` for `root`, which stays.
fn user_to_become(user: Option<&str>) -> Result<Option<(&str, libc::uid_t, libc::gid_t)>> {
    let name = user.unwrap_or(DEFAULT_USER);
    if name == "root" {
        return Ok(None);
    }
    let c_name = CString::new(name).map_err(|_| anyhow::anyhow!("-Z {name}: not a user name"))?;
    // SAFETY: getpwnam takes a NUL-terminated string; the record it returns is read before
    // any other call could overwrite it (the process is single-threaded here).
    let (uid, gid) = unsafe {
        let entry = libc::getpwnam(c_name.as_ptr());
        if entry.is_null() {
            bail!("-Z {name}: no such user (name another with -Z, or keep root with -Z root)");
        }
        ((*entry).pw_uid, (*entry).pw_gid)
    };
    Ok(Some((name, uid, gid)))
}
