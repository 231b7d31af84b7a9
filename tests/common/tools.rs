//! The programs the tests run that a Debian machine may lack, each with the package that
//! installs it: a test that runs one calls `require` first, and fails in one line naming
//! the package instead of a `NotFound` unwrap or a Python traceback. The README's set-up
//! line installs every package named here (tests/setup.rs checks it).
//!
//! sh, bash, timeout, tail and mkfifo are not listed: they come with Debian's essential
//! packages (dash, bash, coreutils), which every installation has.

// Each test crate includes this file and uses only the tools it runs.
#![allow(dead_code)]

use std::path::PathBuf;

/// A program a test runs, and the Debian package that installs it.
#[derive(Debug)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

/// Network namespaces for the live-capture tests (tests/live.rs).
pub const IP: Tool = Tool {
    program: "ip",
    package: "iproute2",
};
/// The REJECT rule that makes the live NAT reset (tests/live_traffic.py).
pub const IPTABLES: Tool = Tool {
    program: "iptables",
    package: "iptables",
};
/// The live tests' traffic: a keep-alive server and a pooled client (tests/live_traffic.py).
pub const PYTHON3: Tool = Tool {
    program: "python3",
    package: "python3",
};
/// The guide's JSON commands (tests/guide.rs).
pub const JQ: Tool = Tool {
    program: "jq",
    package: "jq",
};
/// Rendering the generated man page (tests/manpage.rs).
pub const MAN: Tool = Tool {
    program: "man",
    package: "man-db",
};

/// The server that scrapes `--metrics-listen` in the metrics test (tests/metrics.rs).
pub const PROMETHEUS: Tool = Tool {
    program: "prometheus",
    package: "prometheus",
};
/// `promtool check metrics` on the exposition (tests/metrics.rs).
pub const PROMTOOL: Tool = Tool {
    program: "promtool",
    package: "prometheus",
};

/// Every tool above.
pub const ALL: [&Tool; 7] = [&IP, &IPTABLES, &PYTHON3, &JQ, &MAN, &PROMETHEUS, &PROMTOOL];

/// Where `program` is on PATH, as a shell would find it: an executable file.
pub fn find(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Fails the calling test, in one line that names the package to install, when `tool`'s
/// program is not on PATH.
pub fn require(tool: &Tool) {
    if find(tool.program).is_some() {
        return;
    }
    // The line goes to the test's output, which the harness prints under the failure;
    // resume_unwind fails the test without the panic hook's location and backtrace note,
    // so the line is all the reader sees.
    eprintln!(
        "this test runs `{}`, which is not on PATH: apt-get install -y {} (the README's set-up line installs every tool the tests run)",
        tool.program, tool.package
    );
    std::panic::resume_unwind(Box::new(format!("{} is missing", tool.program)));
}
