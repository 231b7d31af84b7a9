//! docs/guide.md as a reader runs it: each command of a `console` block, run with `sh` from
//! the repository root against the committed captures, prints what the guide shows under
//! it. A line `[...]` in the guide stands for lines it leaves out (zero or more).

use std::path::Path;
use std::process::Command;

#[path = "common/tools.rs"]
mod tools;

const GUIDE: &str = "docs/guide.md";

/// The width the guide's outputs are shown at (`COLUMNS`).
const GUIDE_COLUMNS: &str = "100";

/// Marks lines the guide leaves out of an output.
const TRIMMED: &str = "[...]";

/// Programs a guide command may run that a machine need not have (the README's set-up line
/// installs them); one that is missing fails the test in one line naming its package.
const TOOLS: &[&tools::Tool] = &[&tools::JQ];

/// One `$ command` of a console block and the output shown under it.
struct Transcript {
    /// Line number of the command in the guide, for messages.
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn transcripts(markdown: &str) -> Vec<Transcript> {
    let mut found = Vec::new();
    let mut in_console = false;
    for (index, line) in markdown.lines().enumerate() {
        if !in_console {
            in_console = line.trim_end() == "```console";
            continue;
        }
        if line.trim_end() == "```" {
            in_console = false;
        } else if let Some(command) = line.strip_prefix("$ ") {
            found.push(Transcript {
                line: index + 1,
                command: command.to_string(),
                expected: Vec::new(),
            });
        } else {
            let transcript = found
                .last_mut()
                .unwrap_or_else(|| panic!("{GUIDE}:{}: output before any $ command", index + 1));
            transcript.expected.push(line.trim_end().to_string());
        }
    }
    assert!(!in_console, "{GUIDE}: a console block is not closed");
    found
}

/// Whether `actual` is `expected`, each `[...]` standing for any run of lines.
fn matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == TRIMMED => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, after)| line == first && matches(rest, after)),
    }
}

/// stdout and stderr together, as a terminal shows them, each line's trailing blanks cut.
fn run(command: &str) -> Vec<String> {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_staleconn")).parent().unwrap();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1\n{command}"))
        .current_dir(manifest_dir)
        .env("PATH", path)
        // The guide shows what a 100-column terminal shows.
        .env("COLUMNS", GUIDE_COLUMNS)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect()
}

#[test]
fn every_guide_command_prints_what_the_guide_shows() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GUIDE);
    let markdown = std::fs::read_to_string(&path).unwrap();
    let transcripts = transcripts(&markdown);
    // A guide whose blocks were not recognised would pass with nothing checked.
    assert!(
        transcripts.len() >= 6,
        "only {} commands found in {GUIDE}",
        transcripts.len()
    );
    let mut failures = Vec::new();
    for transcript in &transcripts {
        let words: Vec<&str> = transcript.command.split_whitespace().collect();
        for tool in TOOLS.iter().filter(|tool| words.contains(&tool.program)) {
            tools::require(tool);
        }
        let actual = run(&transcript.command);
        if !matches(&transcript.expected, &actual) {
            failures.push(format!(
                "{GUIDE}:{}: $ {}\n--- the guide shows:\n{}\n--- it printed:\n{}",
                transcript.line,
                transcript.command,
                transcript.expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn trimmed_marker_stands_for_any_run_of_lines() {
    let lines = |text: &str| -> Vec<String> { text.lines().map(str::to_string).collect() };
    assert!(matches(&lines("a\n[...]\nd"), &lines("a\nb\nc\nd")));
    assert!(matches(&lines("a\n[...]\nd"), &lines("a\nd")));
    assert!(matches(&lines("[...]"), &lines("")));
    assert!(!matches(&lines("a\n[...]\nd"), &lines("a\nb\nc")));
    assert!(!matches(&lines("a\nb"), &lines("a\nb\nc")));
    assert!(!matches(&lines("a\nb\nc"), &lines("a\nb")));
}
