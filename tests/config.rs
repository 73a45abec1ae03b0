//! Configuration from file, environment and flags, and the start-up errors for bad values.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs `pixelpipe <args>` expecting a start-up failure; returns its stderr.
fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "expected a start-up error for {args:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_values_are_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pixelpipe.toml");
    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:0\"\nkeyy = \"typo\"\n").unwrap();
    let err = fails(&["--config", file.to_str().unwrap(), "serve"], &[]);
    assert!(err.contains("keyy"), "{err}");

    let err = fails(&["serve", "--format", "$msec,$nope"], &[]);
    assert!(
        err.contains("http.format") && err.contains("$nope"),
        "{err}"
    );

    let err = fails(&["serve"], &[("PIXELPIPE_LOG__MAX_BYTES", "lots")]);
    assert!(err.to_lowercase().contains("max_bytes"), "{err}");

    let err = fails(&["serve"], &[("PIXELPIPE_LOG__FSYNC", "sometimes")]);
    assert!(err.to_lowercase().contains("fsync"), "{err}");

    let err = fails(&["--redis", "http://nope", "serve"], &[]);
    assert!(err.contains("redis"), "{err}");

    let err = fails(&["--config", "/nonexistent/pixelpipe.toml", "serve"], &[]);
    assert!(err.contains("/nonexistent/pixelpipe.toml"), "{err}");

    // Each check names its own field (issue 10), and a size that would overflow is an error.
    for (var, value, field) in [
        (
            "PIXELPIPE_LOG__SEGMENT_BYTES",
            "18446744073709551615",
            "log.segment_bytes",
        ),
        ("PIXELPIPE_SHIP__BATCH_BYTES", "0", "ship.batch_bytes"),
        ("PIXELPIPE_SHIP__BATCH_RECORDS", "0", "ship.batch_records"),
        (
            "PIXELPIPE_ANALYTICS__MINUTE_RETENTION",
            "10m",
            "analytics.minute_retention",
        ),
        (
            "PIXELPIPE_ANALYTICS__SECOND_RETENTION",
            "10s",
            "analytics.second_retention",
        ),
        (
            "PIXELPIPE_HTTP__MAX_HEADER_LINE",
            "10",
            "http.max_header_line",
        ),
        ("PIXELPIPE_RELAY__KEY_PATTERN", "(", "relay.key_pattern"),
    ] {
        let err = fails(&["serve"], &[(var, value)]);
        assert!(err.contains(field), "{var}={value}: {err}");
    }
}

#[test]
fn flags_beat_environment_beat_file() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("pixelpipe.toml");
    std::fs::write(
        &file,
        format!(
            "redis = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\nkey = \"from-file\"\nformat = \"file:$args\"\n",
            redis.url()
        ),
    )
    .unwrap();
    let _server = Pixelpipe::start_with_env(
        &dir.path().join("data"),
        &[
            "--config",
            file.to_str().unwrap(),
            "serve",
            "--format",
            "flag:$args",
        ],
        &[
            ("PIXELPIPE_HTTP__KEY", "from-env"),
            ("PIXELPIPE_HTTP__FORMAT", "env:$args"),
        ],
    );
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(http_get(addr, "/pixel.gif?a=1").unwrap().status, 200);
    wait_until("the record", Duration::from_secs(10), || {
        redis.llen("from-env") == 1
    });
    assert_eq!(redis.list_oldest_first("from-env"), ["flag:a=1"]);
}

#[test]
fn one_process_per_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let _first = Pixelpipe::start(&data, &["--redis", &nowhere, "serve", "--listen", &listen]);
    let second = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["--redis", &nowhere, "--admin-listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another pixelpipe"));
}
