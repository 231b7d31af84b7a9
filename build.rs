//! Build script: the version `--version` prints, with the git commit when built from a
//! checkout of this repository, and the bare package version otherwise (a crates tarball,
//! a Debian source package, an exported tree: no git, or another repository's git).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let described = match commit_of(&manifest_dir) {
        Some(commit) => format!("{version} (git {commit})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=STALECONN_VERSION={described}");
    println!("cargo:rerun-if-changed=build.rs");
}

/// The short commit of HEAD, and the files whose change moves it, when `dir` is the top of
/// a git work tree (a worktree's `.git` is a file pointing elsewhere, so ask git for paths).
fn commit_of(dir: &Path) -> Option<String> {
    // A tarball unpacked inside some other repository must not take that one's commit.
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short", "HEAD"])?;
    // HEAD names the branch; the branch's ref names the commit, loose or packed; HEAD's
    // reflog grows on every commit, checkout and reset, even when the ref moves from
    // packed to loose.
    let mut watched = vec![
        git(dir, &["rev-parse", "--git-path", "HEAD"])?,
        git(dir, &["rev-parse", "--git-path", "logs/HEAD"])?,
    ];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(dir, &["rev-parse", "--git-path", &branch])?);
    }
    watched.push(git(dir, &["rev-parse", "--git-path", "packed-refs"])?);
    for path in watched {
        let path = dir.join(path);
        // Cargo reruns every build for a watched path that does not exist.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}

/// One line of git's output, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let line = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}
