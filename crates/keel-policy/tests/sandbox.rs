//! The sandbox for real, on this machine's kernel: the test binary re-runs itself as the
//! launcher (`launcher_entry`), which restricts itself and execs `bash -c SCRIPT`, exactly
//! as `keel __sandbox-exec` will. Tests of a mechanism the kernel lacks say so on stderr and
//! stop (they never pass silently).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use keel_policy::sandbox::{
    self, LAUNCHER_FAILURE_EXIT_CODE, NetworkFilter, SandboxPolicy, SeccompSupport,
};

/// Carries the launcher arguments (JSON array) to the child test binary.
const LAUNCHER_ENV: &str = "KEEL_SANDBOX_TEST_LAUNCHER";

/// The launcher side of these tests: only runs in the child process the tests start (it is
/// ignored otherwise, and does nothing without its environment variable).
#[test]
#[ignore = "launcher entry point of the sandbox tests; they run it as a child process"]
fn launcher_entry() {
    let Ok(json) = std::env::var(LAUNCHER_ENV) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&json).unwrap();
    std::process::exit(sandbox::run_launcher(args.into_iter().map(OsString::from)));
}

/// Directories outside every writable place (not under any temp directory, even when the
/// checkout is).
fn outside_tmp(name: &str) -> tempfile::TempDir {
    keel_test_support::workspace::outside_temp_dir(name).unwrap()
}

/// Runs `script` with bash through the launcher, with `home` as HOME and `cwd` as the
/// working directory.
fn run_sandboxed(policy: &SandboxPolicy, script: &str, home: &Path, cwd: &Path) -> Output {
    let mut args: Vec<String> = sandbox::launcher_args(policy)
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    args.extend(["bash".to_string(), "-c".to_string(), script.to_string()]);
    run_launcher_with(&args, home, cwd)
}

fn run_launcher_with(args: &[String], home: &Path, cwd: &Path) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "launcher_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(LAUNCHER_ENV, serde_json::to_string(args).unwrap())
        .env("HOME", home)
        .env("TMPDIR", "/tmp")
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// True when the kernel enforces the filesystem rules; otherwise says why the test stops.
fn sandbox_usable(test: &str) -> bool {
    let status = sandbox::status();
    if status.usable() {
        return true;
    }
    eprintln!("SKIPPED {test}: this kernel cannot enforce the sandbox:\n{status}");
    false
}

#[test]
fn status_reports_this_kernel() {
    let status = sandbox::status();
    let shown = status.to_string();
    eprintln!("{shown}");
    assert!(shown.starts_with("Landlock:"), "{shown}");
    if let sandbox::LandlockSupport::Available { abi, .. } = status.landlock {
        assert!(abi >= 1);
        assert!(shown.contains(&format!("ABI {abi}")), "{shown}");
        assert!(shown.contains("filesystem write rules: yes"), "{shown}");
    }
}

#[test]
fn writing_outside_the_writable_set_fails_and_creates_nothing() {
    if !sandbox_usable("writing_outside_the_writable_set_fails_and_creates_nothing") {
        return;
    }
    let work = outside_tmp("work");
    let home = outside_tmp("home");
    let script = r#"echo x > "$HOME/outside""#;

    // Control: without the sandbox the same command writes the file.
    let plain = Command::new("bash")
        .args(["-c", script])
        .env("HOME", home.path())
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    std::fs::remove_file(home.path().join("outside")).unwrap();

    let policy = SandboxPolicy::new([work.path().to_path_buf()], true);
    let out = run_sandboxed(&policy, script, home.path(), work.path());
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "the write succeeded: {stderr}");
    assert!(
        !home.path().join("outside").exists(),
        "the file exists although the command failed"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");

    let note = policy
        .explain_failure(out.status.code(), &stderr)
        .expect("the failure is explained");
    assert!(note.contains("keel's sandbox"), "{note}");
    assert!(
        note.contains(&work.path().display().to_string()),
        "the note names the writable directory: {note}"
    );
}

#[test]
fn writes_inside_the_working_dir_added_dirs_and_tmp_work_and_reads_are_free() {
    if !sandbox_usable("writes_inside_the_working_dir_added_dirs_and_tmp_work_and_reads_are_free") {
        return;
    }
    let work = outside_tmp("work");
    let extra = outside_tmp("extra");
    let home = outside_tmp("home");
    std::fs::write(home.path().join("readable"), "read me\n").unwrap();
    let tmp_file = PathBuf::from(format!(
        "/tmp/keel-sandbox-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let script = format!(
        r#"set -e
echo inside > inside.txt
mkdir -p sub/deeper && mv inside.txt sub/deeper/ && cp sub/deeper/inside.txt again.txt
rm sub/deeper/inside.txt && rmdir sub/deeper
echo more >> again.txt && : > truncated.txt
echo extra > "{extra}/extra.txt"
echo tmp > "{tmp}"
cat "$HOME/readable" > copy.txt
ls / > /dev/null 2>&1
echo to-stdout > /dev/stdout
echo to-stderr >&2
"#,
        extra = extra.path().display(),
        tmp = tmp_file.display()
    );
    let policy = SandboxPolicy::new(
        [work.path().to_path_buf(), extra.path().to_path_buf()],
        true,
    );
    let out = run_sandboxed(&policy, &script, home.path(), work.path());
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(text(&out.stdout).contains("to-stdout"));
    assert!(stderr.contains("to-stderr"));
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(work.path().join("again.txt")), "inside\nmore\n");
    assert_eq!(read(work.path().join("copy.txt")), "read me\n");
    assert!(work.path().join("truncated.txt").exists());
    assert!(!work.path().join("sub/deeper").exists());
    assert_eq!(read(extra.path().join("extra.txt")), "extra\n");
    assert_eq!(read(tmp_file.clone()), "tmp\n");
    std::fs::remove_file(&tmp_file).unwrap();
}

#[test]
fn renaming_a_file_out_of_the_writable_set_fails() {
    if !sandbox_usable("renaming_a_file_out_of_the_writable_set_fails") {
        return;
    }
    let work = outside_tmp("work");
    let home = outside_tmp("home");
    std::fs::write(home.path().join("keep.txt"), "mine\n").unwrap();
    let policy = SandboxPolicy::new([work.path().to_path_buf()], true);
    let script = r#"echo x > f.txt; mv f.txt "$HOME/moved.txt"; rm -f "$HOME/keep.txt"; ln -s /etc/passwd "$HOME/link""#;
    let out = run_sandboxed(&policy, script, home.path(), work.path());
    assert!(!out.status.success());
    assert!(!home.path().join("moved.txt").exists());
    assert!(
        home.path().join("keep.txt").exists(),
        "a file outside was deleted"
    );
    assert!(!home.path().join("link").exists());
}

/// Runs a TCP connect to a listener of this test, through the sandbox.
fn connect_through(network: bool, filter: NetworkFilter) -> (Output, SandboxPolicy, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let work = outside_tmp("work");
    let mut policy = SandboxPolicy::new([work.path().to_path_buf()], network);
    policy.network_filter = filter;
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let out = run_sandboxed(&policy, &script, work.path(), work.path());
    (out, policy, listener)
}

fn assert_connect_blocked(filter: NetworkFilter) {
    let (out, policy, _listener) = connect_through(false, filter);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success() && !stdout.contains("connected"),
        "{filter:?}: connected although the network is off: {stderr}"
    );
    assert!(stderr.contains("Permission denied"), "{filter:?}: {stderr}");
    let note = policy.explain_failure(out.status.code(), &stderr).unwrap();
    assert!(note.contains("no network access"), "{note}");
}

#[test]
fn network_off_blocks_tcp_with_every_available_mechanism() {
    if !sandbox_usable("network_off_blocks_tcp_with_every_available_mechanism") {
        return;
    }
    assert_connect_blocked(NetworkFilter::Auto);
}

#[test]
fn network_off_blocks_tcp_with_landlock_alone() {
    let status = sandbox::status();
    if !status.landlock.network() {
        eprintln!(
            "SKIPPED network_off_blocks_tcp_with_landlock_alone: Landlock here has no TCP \
             rules (needs ABI 4):\n{status}"
        );
        return;
    }
    assert_connect_blocked(NetworkFilter::Landlock);
}

#[test]
fn network_off_blocks_tcp_and_udp_sockets_with_seccomp_alone() {
    let status = sandbox::status();
    if !status.usable() || !matches!(status.seccomp, SeccompSupport::Available { .. }) {
        eprintln!(
            "SKIPPED network_off_blocks_tcp_and_udp_sockets_with_seccomp_alone: needs Landlock \
             and seccomp:\n{status}"
        );
        return;
    }
    assert_connect_blocked(NetworkFilter::Seccomp);

    // UDP too (DNS goes over it), which Landlock's TCP rules do not cover.
    let work = outside_tmp("work");
    let mut policy = SandboxPolicy::new([work.path().to_path_buf()], false);
    policy.network_filter = NetworkFilter::Seccomp;
    let script = "exec 3<>/dev/udp/127.0.0.1/9 && echo opened";
    let out = run_sandboxed(&policy, script, work.path(), work.path());
    assert!(!out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("opened"));
}

#[test]
fn network_on_reaches_a_local_listener() {
    if !sandbox_usable("network_on_reaches_a_local_listener") {
        return;
    }
    let (out, _policy, listener) = connect_through(true, NetworkFilter::Auto);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("connected"));
    // The connection really arrived.
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match listener.accept() {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::yield_now();
            }
            Err(e) => panic!("no connection arrived: {e}"),
        }
    }
}

#[test]
fn unix_sockets_keep_working_with_the_network_off() {
    if !sandbox_usable("unix_sockets_keep_working_with_the_network_off") {
        return;
    }
    let work = outside_tmp("work");
    let socket = work.path().join("s.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let policy = SandboxPolicy::new([work.path().to_path_buf()], false);
    // bash cannot open UNIX sockets; the test binary's own helper connects instead.
    let exe = std::env::current_exe().unwrap();
    let mut args: Vec<String> = sandbox::launcher_args(&policy)
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    args.extend(
        [
            exe.to_str().unwrap(),
            "unix_connect_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "-q",
        ]
        .map(String::from),
    );
    let out = Command::new(&exe)
        .args([
            "launcher_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(LAUNCHER_ENV, serde_json::to_string(&args).unwrap())
        .env(UNIX_HELPER_ENV, &socket)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_ok(),
        "the UNIX-socket connection did not arrive"
    );
}

const UNIX_HELPER_ENV: &str = "KEEL_SANDBOX_TEST_UNIX_SOCKET";

/// Connects to the UNIX socket named by its environment variable (run inside the sandbox by
/// `unix_sockets_keep_working_with_the_network_off`).
#[test]
#[ignore = "helper of unix_sockets_keep_working_with_the_network_off; runs as its child"]
fn unix_connect_helper() {
    let Ok(path) = std::env::var(UNIX_HELPER_ENV) else {
        return;
    };
    std::os::unix::net::UnixStream::connect(path).unwrap();
}

#[test]
fn a_missing_program_or_bad_arguments_fail_with_the_launcher_exit_code() {
    let work = outside_tmp("work");
    let policy = SandboxPolicy::new([work.path().to_path_buf()], true);
    let mut args: Vec<String> = sandbox::launcher_args(&policy)
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    args.push("/nonexistent/keel-test-program".to_string());
    let out = run_launcher_with(&args, work.path(), work.path());
    let stderr = text(&out.stderr);
    if sandbox::status().usable() {
        assert!(
            stderr.contains("keel sandbox: cannot run `/nonexistent/keel-test-program`"),
            "{stderr}"
        );
    } else {
        assert!(
            stderr.contains("keel sandbox: the sandbox is on, but"),
            "{stderr}"
        );
    }
    assert_eq!(out.status.code(), Some(LAUNCHER_FAILURE_EXIT_CODE));

    let bad = ["--network".to_string(), "sideways".to_string()];
    let out = run_launcher_with(&bad, work.path(), work.path());
    assert_eq!(out.status.code(), Some(LAUNCHER_FAILURE_EXIT_CODE));
    assert!(text(&out.stderr).contains("bad launcher arguments"));
}

#[test]
fn launcher_command_builds_the_hidden_subcommand() {
    let policy = SandboxPolicy::new([PathBuf::from("/work")], false);
    let command =
        sandbox::launcher_command(Path::new("/usr/bin/keel"), &policy, "bash", ["-c", "ls"]);
    let args: Vec<_> = command.get_args().map(|a| a.to_str().unwrap()).collect();
    assert_eq!(command.get_program(), "/usr/bin/keel");
    assert_eq!(
        args,
        [
            "__sandbox-exec",
            "--write",
            "/work",
            "--network",
            "off",
            "--",
            "bash",
            "-c",
            "ls"
        ]
    );
}
