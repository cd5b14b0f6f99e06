//! The binary's maintenance commands (`verify`, `package`, `checkpoint`, ...) run on a
//! server's data folder while it serves, as an operator would run them.

use std::process::Output;

use crate::Server;

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Ran {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `artifact-store <args> --data-dir <the server's data folder>` and waits for it.
///
/// # Panics
/// When the binary cannot be started.
#[must_use]
pub fn run(server: &Server, args: &[&str]) -> Ran {
    run_with_env(server, args, &[])
}

/// [`run`] with these environment variables set as well.
///
/// # Panics
/// When the binary cannot be started.
#[must_use]
pub fn run_with_env(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut command = server.cli_command(args);
    command.envs(env.iter().copied());
    let output = command.output().unwrap_or_else(|err| panic!("cannot run {args:?}: {err}"));
    output.into()
}

/// [`run`], asserting the exit code.
///
/// # Panics
/// When the command exits with another code.
pub fn expect(server: &Server, args: &[&str], code: i32) -> Ran {
    let ran = run(server, args);
    assert_eq!(ran.code, Some(code), "artifact-store {args:?} exited with {:?}\n{ran:#?}", ran.code);
    ran
}

/// Starts `gc --min-age 0s --json` on the server's data folder, pausing at the gc test barrier
/// `barrier`: once it has marked its first batch, the pass writes `<barrier>.reached` and waits
/// until `barrier` exists before it deletes anything. Its output is captured.
///
/// # Panics
/// When the binary cannot be started.
#[must_use]
pub fn spawn_gc_paused(server: &Server, barrier: &std::path::Path) -> std::process::Child {
    server
        .cli_command(&["gc", "--min-age", "0s", "--json"])
        .env("ARTIFACT_STORE_GC_PAUSE", barrier)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start gc")
}
