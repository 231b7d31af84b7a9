//! The README's set-up from scratch: its one install line names the package of every
//! program the tests run (tests/common/tools.rs), and `.ci/run` installs exactly that line.

use std::path::Path;
use std::process::Command;

#[path = "common/tools.rs"]
mod tools;

/// How the README's install line begins; `.ci/run` finds it by the same words.
const INSTALL: &str = "apt-get update && apt-get install -y ";

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The packages of the README's install line; there must be exactly one such line.
fn readme_packages() -> Vec<String> {
    let readme = repo_file("README.md");
    let lines: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix(INSTALL))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "README.md: want one line starting `{INSTALL}`, found {lines:?}"
    );
    lines[0].split_whitespace().map(str::to_string).collect()
}

#[test]
fn readme_install_line_names_the_package_of_every_tool_the_tests_run() {
    let packages = readme_packages();
    for tool in tools::ALL {
        assert!(
            packages.iter().any(|p| p == tool.package),
            "the tests run {} (package {}), which README.md's install line {packages:?} lacks",
            tool.program,
            tool.package
        );
    }
    // The build: a C toolchain for rustc's linker and libpcap's headers.
    for build in ["build-essential", "libpcap-dev"] {
        assert!(packages.iter().any(|p| p == build), "{build}: {packages:?}");
    }
}

#[test]
fn ci_installs_exactly_the_readme_line() {
    let out = Command::new("bash")
        .args([".ci/run", "--print-packages"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ci: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(ci, readme_packages());
}
