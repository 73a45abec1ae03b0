//! One run of the `--exec` command: its input written from a thread of its own (a command
//! that does not read must not block us), bounded by `--exec-timeout`, and stopped on
//! `SIGTERM`. The command runs in a process group of its own, so that what a shell
//! started for it (`sh -c 'sleep 100'`) is stopped with it.

use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a command gets to exit after `SIGTERM` before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// How often a running command is looked at (its exit, the deadline, the stop flag).
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub enum RunOutcome {
    Exited(ExitStatus),
    /// Killed after running longer than the timeout: a failed try.
    TimedOut,
    /// Stopped because we are stopping: neither success nor failure.
    Stopped,
}

pub fn run(
    command: &str,
    input: &[u8],
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> io::Result<RunOutcome> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .process_group(0)
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        // A command that exits without reading all of its input is judged by its exit
        // status alone, so a broken pipe here is not an error.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(RunOutcome::Exited(status));
        }
        if stop() {
            terminate(&mut child)?;
            return Ok(RunOutcome::Stopped);
        }
        if Instant::now() >= deadline {
            signal_group(&child, libc::SIGKILL);
            child.wait()?;
            return Ok(RunOutcome::TimedOut);
        }
        std::thread::sleep(POLL);
    }
}

/// `SIGTERM` to the command's group, `SIGKILL` after the grace period.
fn terminate(child: &mut Child) -> io::Result<()> {
    signal_group(child, libc::SIGTERM);
    let until = Instant::now() + STOP_GRACE;
    while Instant::now() < until {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    signal_group(child, libc::SIGKILL);
    child.wait().map(|_| ())
}

fn signal_group(child: &Child, signal: libc::c_int) {
    // The child leads its own group (`process_group(0)`), so its id is the group's.
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Sleeps `d`, waking early (returning false) when `stop` turns true.
pub fn sleep_unless_stopped(d: Duration, stop: &dyn Fn() -> bool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop() {
            return false;
        }
        std::thread::sleep(POLL.min(until - Instant::now()));
    }
    !stop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_command_is_killed_at_the_timeout_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let cmd = format!("(sleep 1; touch {}) & sleep 100", marker.display());
        let started = Instant::now();
        let outcome = run(&cmd, b"", Duration::from_millis(200), &|| false).unwrap();
        assert!(matches!(outcome, RunOutcome::TimedOut), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the command's children were killed too");
    }

    #[test]
    fn a_command_that_does_not_read_its_input_does_not_block() {
        let input = vec![b'x'; 1 << 20];
        let outcome = run("exit 3", &input, Duration::from_secs(10), &|| false).unwrap();
        assert!(matches!(outcome, RunOutcome::Exited(s) if s.code() == Some(3)));
    }

    #[test]
    fn stopping_ends_the_command() {
        let started = Instant::now();
        let stop_at = started + Duration::from_millis(200);
        let outcome = run("sleep 100", b"", Duration::from_secs(60), &|| {
            Instant::now() > stop_at
        })
        .unwrap();
        assert!(matches!(outcome, RunOutcome::Stopped));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
