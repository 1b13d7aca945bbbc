//! The OS sandbox for shell commands (Linux): writes only under the working directories,
//! added directories and temp; reads everywhere; network optionally off.
//!
//! The workspace forbids `unsafe`, so nothing can run between `fork` and `exec` of the
//! command. Instead a small launcher restricts *itself* and then `exec`s the real command,
//! which inherits the restrictions: keel runs `keel __sandbox-exec <launcher args> -- bash -c
//! CMD` ([`launcher_command`]), and that hidden subcommand calls [`run_launcher`].
//!
//! - Writes: Landlock (Linux 5.13+). Every write right the kernel knows (create, remove,
//!   rename, truncate, …) is handled, and granted only beneath [`SandboxPolicy::effective_writable`].
//!   Reading, executing, device ioctls and connecting to UNIX sockets stay allowed.
//! - Network off: Landlock's TCP rules (ABI 4+, Linux 6.7) deny TCP `connect`/`bind`, and a
//!   seccomp filter refuses to create IPv4/IPv6/packet sockets (which also stops UDP, DNS
//!   included) and io_uring (which could create sockets without the `socket` syscall). UNIX
//!   sockets keep working. [`NetworkFilter`] picks one mechanism (tests use that).
//! - When the kernel cannot enforce the filesystem rules the launcher refuses to run the
//!   command rather than run it unconfined.
//!
//! Processes inside cannot gain privileges (`no_new_privs`): `sudo` and other set-uid
//! programs do not work in the sandbox.

#[cfg(target_os = "linux")]
mod linux;

use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use keel_config::SandboxSettings;

/// The hidden `keel` subcommand that runs a command in the sandbox.
pub const LAUNCHER_SUBCOMMAND: &str = "__sandbox-exec";

/// The exit code of a launcher that could not run the command (as a shell does for a command
/// it cannot execute); its stderr then starts with [`LAUNCHER_ERROR_PREFIX`].
pub const LAUNCHER_FAILURE_EXIT_CODE: i32 = 126;

/// How the launcher's own error messages start, so they are told apart from the command's.
pub const LAUNCHER_ERROR_PREFIX: &str = "keel sandbox:";

/// What a sandboxed command may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Directories (and files) the command may write beneath: the working directories and
    /// the user's additions. Temp directories and the usual devices are always added (see
    /// [`SandboxPolicy::effective_writable`]). Absolute paths.
    pub writable: Vec<PathBuf>,
    /// Whether the command may use the network.
    pub network: bool,
    /// How the network is cut off when `network` is false.
    pub network_filter: NetworkFilter,
}

/// Which mechanism cuts off the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetworkFilter {
    /// Everything the kernel offers: Landlock TCP rules where supported, plus the seccomp
    /// socket filter.
    #[default]
    Auto,
    /// Only Landlock's TCP rules (fails on kernels without Landlock ABI 4).
    Landlock,
    /// Only the seccomp socket filter.
    Seccomp,
}

impl NetworkFilter {
    fn as_str(self) -> &'static str {
        match self {
            NetworkFilter::Auto => "auto",
            NetworkFilter::Landlock => "landlock",
            NetworkFilter::Seccomp => "seccomp",
        }
    }
}

/// Why a sandboxed command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The launcher was given arguments it does not understand.
    #[error(
        "bad launcher arguments: {0} (expected `{LAUNCHER_SUBCOMMAND} [--write PATH]... \
         [--network on|off] [--network-filter auto|landlock|seccomp] -- COMMAND [ARGS]...`)"
    )]
    BadArguments(String),
    /// This platform has no sandbox keel can use.
    #[error(
        "keel's sandbox needs Linux with Landlock; on this system turn it off with \
         `\"sandbox\": {{\"enabled\": false}}` in settings"
    )]
    Unsupported,
    /// The kernel cannot enforce the filesystem rules.
    #[error(
        "the sandbox is on, but this kernel cannot enforce it: {0}. Use Linux 5.13 or newer \
         with Landlock enabled (`lsm=landlock,...` on the kernel command line), or turn the \
         sandbox off with `\"sandbox\": {{\"enabled\": false}}`"
    )]
    Unavailable(String),
    /// Setting up Landlock failed.
    #[error("could not set up the Landlock sandbox: {0}")]
    Landlock(String),
    /// Cutting off the network failed.
    #[error(
        "could not cut off the network: {0}. Allow the network with \
         `\"sandbox\": {{\"network\": true}}` or turn the sandbox off"
    )]
    Network(String),
    /// The command could not be executed.
    #[error("cannot run `{program}`: {source}")]
    Exec {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
}

impl SandboxPolicy {
    /// A policy allowing writes beneath `writable` (plus temp and devices).
    pub fn new(writable: impl IntoIterator<Item = PathBuf>, network: bool) -> Self {
        Self {
            writable: writable.into_iter().collect(),
            network,
            network_filter: NetworkFilter::Auto,
        }
    }

    /// The policy the `sandbox` settings ask for, or `None` when `sandbox.enabled` is not
    /// true. `working_dirs` are the session's working directory and added directories;
    /// `writablePaths` may start with `~/` (the home directory) or be relative to the first
    /// working directory. The network stays on unless `sandbox.network` is `false`.
    pub fn from_settings(
        settings: &SandboxSettings,
        working_dirs: &[PathBuf],
        home: &Path,
    ) -> Option<Self> {
        if settings.enabled != Some(true) {
            return None;
        }
        let base = working_dirs.first().map_or(home, PathBuf::as_path);
        let mut writable = working_dirs.to_vec();
        for path in &settings.writable_paths {
            let path = if path == "~" {
                home.to_path_buf()
            } else if let Some(rest) = path.strip_prefix("~/") {
                home.join(rest)
            } else {
                base.join(path)
            };
            writable.push(path);
        }
        let network = settings.network.as_ref().is_none_or(|n| n.allowed());
        Some(Self::new(writable, network))
    }

    /// Everything the command may write beneath: [`SandboxPolicy::writable`] plus temp
    /// directories and the devices a shell needs.
    pub fn effective_writable(&self) -> Vec<PathBuf> {
        let mut all = self.writable.clone();
        for path in temp_dirs()
            .into_iter()
            .chain(DEVICES.iter().map(PathBuf::from))
        {
            if !all.contains(&path) {
                all.push(path);
            }
        }
        all
    }

    /// The writable places worth naming to a user: the policy's own plus temp directories.
    fn named_writable(&self) -> Vec<PathBuf> {
        let mut all = self.writable.clone();
        for path in temp_dirs() {
            if !all.contains(&path) {
                all.push(path);
            }
        }
        all
    }

    /// When a sandboxed command failed, a note for its output if the failure looks like the
    /// sandbox's doing (permission denied or read-only file system on a path outside the
    /// writable set, or a network error while the network is off); `None` otherwise.
    pub fn explain_failure(&self, exit_code: Option<i32>, stderr: &str) -> Option<String> {
        if exit_code == Some(0) || stderr.trim_start().starts_with(LAUNCHER_ERROR_PREFIX) {
            return None;
        }
        let writable = self.effective_writable();
        let mut files = false;
        let mut network = false;
        for line in stderr.lines() {
            let lower = line.to_ascii_lowercase();
            let network_line = NETWORK_MARKERS.iter().any(|m| lower.contains(m));
            if !self.network && network_line {
                network = true;
                continue;
            }
            if !DENIAL_MARKERS.iter().any(|m| lower.contains(m)) {
                continue;
            }
            let paths = paths_in(line);
            if paths.is_empty() || paths.iter().any(|p| !is_beneath_any(p, &writable)) {
                files = true;
            }
        }
        if !files && !network {
            return None;
        }
        let dirs = self
            .named_writable()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut note = format!(
            "Note: this command ran in keel's sandbox, which allows writes only under {dirs}"
        );
        if !self.network {
            note.push_str(" and has no network access");
        }
        note.push_str(". The failure above may come from the sandbox: ");
        let mut fixes = Vec::new();
        if files {
            fixes.push(
                "write inside those directories, or add the directory to \
                 `sandbox.writablePaths` in settings",
            );
        }
        if network {
            fixes.push("allow the network with `\"sandbox\": {\"network\": true}` in settings");
        }
        note.push_str(&fixes.join("; or "));
        note.push_str(" (or ask the user to run the command outside the sandbox).");
        Some(note)
    }
}

/// Devices and pseudo-files a shell writes to in normal operation.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
];

/// Temp directories: `/tmp`, `/var/tmp` and `$TMPDIR`.
fn temp_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/tmp"), PathBuf::from("/var/tmp")];
    let from_env = std::env::temp_dir();
    if from_env.is_absolute() && !dirs.contains(&from_env) {
        dirs.push(from_env);
    }
    dirs
}

/// Lower-case phrases of "you may not write here" errors.
const DENIAL_MARKERS: &[&str] = &[
    "permission denied",
    "read-only file system",
    "operation not permitted",
    "eacces",
    "erofs",
    "eperm",
];

/// Lower-case phrases of network failures (checked only when the network is off).
const NETWORK_MARKERS: &[&str] = &[
    "network is unreachable",
    "could not resolve",
    "couldn't resolve",
    "temporary failure in name resolution",
    "name or service not known",
    "name resolution",
    "getaddrinfo",
    "socket:",
    "connect:",
    "failed to connect",
    "couldn't connect",
    "could not connect",
    "enetunreach",
    "eai_again",
    "/dev/tcp/",
    "/dev/udp/",
];

/// Absolute (or `~/`) paths mentioned in an error line.
fn paths_in(line: &str) -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    line.split_whitespace()
        .map(|word| {
            word.trim_matches(|c: char| {
                matches!(
                    c,
                    '\'' | '"'
                        | '`'
                        | '‘'
                        | '’'
                        | '“'
                        | '”'
                        | '('
                        | ')'
                        | '['
                        | ']'
                        | ','
                        | ':'
                        | ';'
                )
            })
        })
        .filter_map(|word| {
            if word.starts_with('/') {
                Some(PathBuf::from(word))
            } else if let (Some(rest), Some(home)) = (word.strip_prefix("~/"), &home) {
                Some(home.join(rest))
            } else {
                None
            }
        })
        .collect()
}

fn is_beneath_any(path: &Path, dirs: &[PathBuf]) -> bool {
    // The path may not exist (it could not be created); its parent usually does, and
    // resolving it sees through symlinks like /tmp -> /private/tmp.
    let resolved = path
        .parent()
        .and_then(|parent| parent.canonicalize().ok())
        .and_then(|parent| path.file_name().map(|name| parent.join(name)));
    dirs.iter().any(|dir| {
        let dir_resolved = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        path.starts_with(dir)
            || path.starts_with(&dir_resolved)
            || resolved
                .as_ref()
                .is_some_and(|r| r.starts_with(dir) || r.starts_with(&dir_resolved))
    })
}

/// The launcher's arguments for `policy`, ending with `--`: append the command and its
/// arguments, and put [`LAUNCHER_SUBCOMMAND`] in front.
pub fn launcher_args(policy: &SandboxPolicy) -> Vec<OsString> {
    let mut args = Vec::new();
    for path in &policy.writable {
        args.push(OsString::from("--write"));
        args.push(path.as_os_str().to_os_string());
    }
    args.push(OsString::from("--network"));
    args.push(OsString::from(if policy.network { "on" } else { "off" }));
    if policy.network_filter != NetworkFilter::Auto {
        args.push(OsString::from("--network-filter"));
        args.push(OsString::from(policy.network_filter.as_str()));
    }
    args.push(OsString::from("--"));
    args
}

/// A ready-to-spawn command that runs `program args` in the sandbox through `keel_exe
/// __sandbox-exec` (convert it with `tokio::process::Command::from`, then set the working
/// directory, stdio and process group as for an unsandboxed command).
pub fn launcher_command(
    keel_exe: &Path,
    policy: &SandboxPolicy,
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> std::process::Command {
    let mut command = std::process::Command::new(keel_exe);
    command
        .arg(LAUNCHER_SUBCOMMAND)
        .args(launcher_args(policy))
        .arg(program)
        .args(args);
    command
}

/// Reads the launcher's arguments (those after [`LAUNCHER_SUBCOMMAND`]): the policy, and the
/// command after `--`.
pub fn parse_launcher_args(
    args: impl IntoIterator<Item = OsString>,
) -> Result<(SandboxPolicy, Vec<OsString>), SandboxError> {
    let mut policy = SandboxPolicy::new(Vec::new(), true);
    let mut args = args.into_iter();
    let mut network = None;
    loop {
        let Some(arg) = args.next() else {
            return Err(SandboxError::BadArguments(
                "no `--` before the command".to_string(),
            ));
        };
        let flag = arg.to_string_lossy();
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| SandboxError::BadArguments(format!("`{name}` needs a value")))
        };
        match flag.as_ref() {
            "--" => break,
            "--write" => {
                let path = PathBuf::from(value("--write")?);
                if !path.is_absolute() {
                    return Err(SandboxError::BadArguments(format!(
                        "`--write {}`: the path must be absolute",
                        path.display()
                    )));
                }
                policy.writable.push(path);
            }
            "--network" => {
                let given = value("--network")?;
                network = Some(match given.to_str() {
                    Some("on") => true,
                    Some("off") => false,
                    _ => {
                        return Err(SandboxError::BadArguments(format!(
                            "`--network {}`: use `on` or `off`",
                            given.to_string_lossy()
                        )));
                    }
                });
            }
            "--network-filter" => {
                let given = value("--network-filter")?;
                policy.network_filter = match given.to_str() {
                    Some("auto") => NetworkFilter::Auto,
                    Some("landlock") => NetworkFilter::Landlock,
                    Some("seccomp") => NetworkFilter::Seccomp,
                    _ => {
                        return Err(SandboxError::BadArguments(format!(
                            "`--network-filter {}`: use `auto`, `landlock` or `seccomp`",
                            given.to_string_lossy()
                        )));
                    }
                };
            }
            other => {
                return Err(SandboxError::BadArguments(format!(
                    "unknown option `{other}`"
                )));
            }
        }
    }
    let Some(network) = network else {
        // Fail closed: a launcher told nothing about the network must not guess "on".
        return Err(SandboxError::BadArguments(
            "`--network on|off` is required".to_string(),
        ));
    };
    policy.network = network;
    let command: Vec<OsString> = args.collect();
    if command.is_empty() {
        return Err(SandboxError::BadArguments(
            "no command after `--`".to_string(),
        ));
    }
    Ok((policy, command))
}

/// Restricts the current process as `policy` says and replaces it with `command`. Returns
/// only on failure; the command never runs unconfined.
pub fn exec_sandboxed(
    policy: &SandboxPolicy,
    command: &[OsString],
) -> Result<Infallible, SandboxError> {
    let Some((program, args)) = command.split_first() else {
        return Err(SandboxError::BadArguments("no command to run".to_string()));
    };
    #[cfg(target_os = "linux")]
    {
        linux::restrict(policy)?;
        use std::os::unix::process::CommandExt as _;
        let error = std::process::Command::new(program).args(args).exec();
        Err(SandboxError::Exec {
            program: program.to_string_lossy().into_owned(),
            source: error,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (policy, program, args);
        Err(SandboxError::Unsupported)
    }
}

/// The whole hidden subcommand: parses `args` (those after [`LAUNCHER_SUBCOMMAND`]) and execs
/// the command in the sandbox. Returns only on failure, after printing the reason to stderr
/// (prefixed with [`LAUNCHER_ERROR_PREFIX`]); exit with the code it returns.
pub fn run_launcher(args: impl IntoIterator<Item = OsString>) -> i32 {
    let error = match parse_launcher_args(args) {
        Ok((policy, command)) => match exec_sandboxed(&policy, &command) {
            Ok(never) => match never {},
            Err(error) => error,
        },
        Err(error) => error,
    };
    eprintln!("{LAUNCHER_ERROR_PREFIX} {error}");
    LAUNCHER_FAILURE_EXIT_CODE
}

/// What this machine's kernel offers the sandbox, for `keel sandbox status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxStatus {
    /// Landlock support.
    pub landlock: LandlockSupport,
    /// seccomp filter support.
    pub seccomp: SeccompSupport,
}

/// Whether Landlock can restrict writes (and TCP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LandlockSupport {
    /// Available with this ABI version (as far as the landlock crate knows; `kernel_abi`
    /// is set when the kernel is newer than the crate).
    Available {
        /// The ABI version keel uses.
        abi: u32,
        /// The kernel's own ABI version when it is newer than keel knows.
        kernel_abi: Option<i32>,
    },
    /// Built into the kernel but not enabled at boot.
    NotEnabled,
    /// Not built into the kernel (or the kernel is older than 5.13).
    NotImplemented,
    /// Not Linux.
    NotLinux,
}

impl LandlockSupport {
    /// Whether Landlock can limit writes (any ABI).
    pub fn filesystem(&self) -> bool {
        matches!(self, LandlockSupport::Available { .. })
    }

    /// Whether Landlock can deny TCP connect/bind (ABI 4+).
    pub fn network(&self) -> bool {
        matches!(self, LandlockSupport::Available { abi, .. } if *abi >= 4)
    }
}

/// Whether a seccomp filter can refuse network sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeccompSupport {
    /// Available for this CPU architecture.
    Available {
        /// The architecture the filter is compiled for.
        arch: &'static str,
    },
    /// Not usable, and why.
    Unavailable(String),
}

impl SandboxStatus {
    /// Whether sandboxed commands can run at all (the filesystem rules are enforceable).
    pub fn usable(&self) -> bool {
        self.landlock.filesystem()
    }

    /// Whether "network off" can be enforced.
    pub fn network_blockable(&self) -> bool {
        self.landlock.network() || matches!(self.seccomp, SeccompSupport::Available { .. })
    }
}

/// Probes the running kernel without restricting anything.
pub fn status() -> SandboxStatus {
    #[cfg(target_os = "linux")]
    {
        SandboxStatus {
            landlock: linux::landlock_support(),
            seccomp: linux::seccomp_support(),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        SandboxStatus {
            landlock: LandlockSupport::NotLinux,
            seccomp: SeccompSupport::Unavailable("not Linux".to_string()),
        }
    }
}

impl fmt::Display for SandboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        match &self.landlock {
            LandlockSupport::Available { abi, kernel_abi } => {
                write!(f, "Landlock: available, ABI {abi}")?;
                if let Some(kernel) = kernel_abi {
                    write!(f, " (the kernel offers ABI {kernel}; keel uses {abi})")?;
                }
                writeln!(f)?;
            }
            LandlockSupport::NotEnabled => writeln!(
                f,
                "Landlock: built into the kernel but not enabled (add `landlock` to the \
                 kernel's `lsm=` boot parameter)"
            )?,
            LandlockSupport::NotImplemented => writeln!(
                f,
                "Landlock: not available (the kernel is older than 5.13 or built without it)"
            )?,
            LandlockSupport::NotLinux => writeln!(f, "Landlock: not available (not Linux)")?,
        }
        writeln!(
            f,
            "  filesystem write rules: {}",
            yes_no(self.landlock.filesystem())
        )?;
        writeln!(
            f,
            "  TCP network rules (ABI 4+): {}",
            yes_no(self.landlock.network())
        )?;
        match &self.seccomp {
            SeccompSupport::Available { arch } => {
                writeln!(f, "seccomp socket filter: available ({arch})")?
            }
            SeccompSupport::Unavailable(why) => {
                writeln!(f, "seccomp socket filter: not available ({why})")?
            }
        }
        if self.usable() {
            write!(
                f,
                "sandbox.enabled: commands can write only under the working directories, \
                 added directories and temp"
            )?;
            let mut mechanisms = Vec::new();
            if self.landlock.network() {
                mechanisms.push("Landlock TCP rules");
            }
            if matches!(self.seccomp, SeccompSupport::Available { .. }) {
                mechanisms.push("a seccomp filter on new internet sockets");
            }
            if mechanisms.is_empty() {
                write!(f, "; sandbox.network false cannot be enforced here")
            } else {
                write!(
                    f,
                    "; sandbox.network false is enforced with {}",
                    mechanisms.join(" and ")
                )
            }
        } else {
            write!(
                f,
                "sandbox.enabled: cannot be enforced here; sandboxed commands would refuse to run"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SandboxPolicy {
        SandboxPolicy::new([PathBuf::from("/work/project")], false)
    }

    #[test]
    fn launcher_args_round_trip() {
        let mut policy = policy();
        policy.writable.push(PathBuf::from("/data/out"));
        policy.network_filter = NetworkFilter::Seccomp;
        let mut args = launcher_args(&policy);
        args.extend(["bash", "-c", "echo hi"].map(OsString::from));
        let (parsed, command) = parse_launcher_args(args).unwrap();
        assert_eq!(parsed, policy);
        assert_eq!(command, ["bash", "-c", "echo hi"].map(OsString::from));
    }

    #[test]
    fn command_may_contain_double_dash_and_option_lookalikes() {
        let mut args = launcher_args(&SandboxPolicy::new([], true));
        args.extend(["echo", "--", "--write", "/"].map(OsString::from));
        let (parsed, command) = parse_launcher_args(args).unwrap();
        assert!(parsed.writable.is_empty());
        assert_eq!(command, ["echo", "--", "--write", "/"].map(OsString::from));
    }

    #[test]
    fn bad_launcher_args_are_named() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--write", "rel/dir", "--network", "on", "--", "true"],
                "must be absolute",
            ),
            (&["--network", "maybe", "--", "true"], "use `on` or `off`"),
            (&["--write"], "`--write` needs a value"),
            (&["--bogus", "--", "true"], "unknown option `--bogus`"),
            (&["--network", "on", "--"], "no command after `--`"),
            (&["--network", "on", "true"], "unknown option `true`"),
            (&["--write", "/x"], "no `--` before the command"),
            (&["--", "true"], "`--network on|off` is required"),
        ];
        for (args, expected) in cases {
            let error = parse_launcher_args(args.iter().map(OsString::from)).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{args:?}: {error} should mention {expected}"
            );
        }
    }

    #[test]
    fn settings_give_a_policy_only_when_enabled() {
        let home = Path::new("/home/me");
        let dirs = [PathBuf::from("/work/project")];
        let mut settings = SandboxSettings::default();
        assert_eq!(SandboxPolicy::from_settings(&settings, &dirs, home), None);
        settings.enabled = Some(true);
        settings.writable_paths = vec!["~/.cache".into(), "build".into(), "/opt/out".into()];
        let policy = SandboxPolicy::from_settings(&settings, &dirs, home).unwrap();
        assert!(policy.network, "network defaults to on");
        assert_eq!(
            policy.writable,
            [
                "/work/project",
                "/home/me/.cache",
                "/work/project/build",
                "/opt/out"
            ]
            .map(PathBuf::from)
        );
        settings.network = Some(keel_config::settings::SandboxNetwork::Allowed(false));
        assert!(
            !SandboxPolicy::from_settings(&settings, &dirs, home)
                .unwrap()
                .network
        );
    }

    #[test]
    fn effective_writable_adds_temp_and_devices() {
        let all = policy().effective_writable();
        for path in ["/work/project", "/tmp", "/dev/null", "/dev/pts"] {
            assert!(
                all.contains(&PathBuf::from(path)),
                "{path} missing from {all:?}"
            );
        }
        assert!(!all.contains(&PathBuf::from("/")));
    }

    #[test]
    fn explains_denied_writes_outside_the_writable_set() {
        let policy = policy();
        let cases = [
            "bash: line 1: /home/me/outside: Permission denied",
            "touch: cannot touch '/etc/keel-test': Permission denied",
            "mkdir: cannot create directory ‘/opt/x’: Read-only file system",
            "PermissionError: [Errno 13] Permission denied: '/root/x'",
            "npm ERR! Error: EACCES: permission denied, mkdir '/usr/lib/node_modules/x'",
        ];
        for stderr in cases {
            let note = policy.explain_failure(Some(1), stderr).unwrap_or_else(|| {
                panic!("no explanation for {stderr}");
            });
            assert!(note.contains("keel's sandbox"), "{note}");
            assert!(note.contains("/work/project"), "{note}");
            assert!(note.contains("/tmp"), "{note}");
            assert!(note.contains("sandbox.writablePaths"), "{note}");
        }
    }

    #[test]
    fn does_not_blame_the_sandbox_for_unrelated_failures() {
        let policy = policy();
        // Exit 0, ordinary errors, and denials inside the writable set are not its doing.
        assert_eq!(policy.explain_failure(Some(0), "Permission denied"), None);
        assert_eq!(policy.explain_failure(Some(1), "error: no such file"), None);
        assert_eq!(
            policy.explain_failure(Some(1), "bash: /work/project/ro.txt: Permission denied"),
            None
        );
        assert_eq!(
            policy.explain_failure(Some(1), "bash: /tmp/x/y: Permission denied"),
            None
        );
        // The launcher's own errors already say what happened.
        assert_eq!(
            policy.explain_failure(
                Some(LAUNCHER_FAILURE_EXIT_CODE),
                "keel sandbox: cannot run `nope`: No such file or directory"
            ),
            None
        );
    }

    #[test]
    fn explains_network_failures_only_when_the_network_is_off() {
        let off = policy();
        let stderr = "curl: (6) Could not resolve host: example.com";
        let note = off.explain_failure(Some(6), stderr).unwrap();
        assert!(note.contains("no network access"), "{note}");
        assert!(note.contains("\"network\": true"), "{note}");
        assert!(!note.contains("writablePaths"), "{note}");
        let on = SandboxPolicy::new([PathBuf::from("/work/project")], true);
        assert_eq!(on.explain_failure(Some(6), stderr), None);
        let bash = "bash: connect: Permission denied\nbash: line 1: /dev/tcp/127.0.0.1/80: Permission denied";
        let note = off.explain_failure(Some(1), bash).unwrap();
        assert!(note.contains("\"network\": true"), "{note}");
    }

    #[test]
    fn status_display_names_every_mechanism() {
        let status = SandboxStatus {
            landlock: LandlockSupport::Available {
                abi: 3,
                kernel_abi: None,
            },
            seccomp: SeccompSupport::Available { arch: "x86_64" },
        };
        let text = status.to_string();
        assert!(text.contains("Landlock: available, ABI 3"), "{text}");
        assert!(text.contains("TCP network rules (ABI 4+): no"), "{text}");
        assert!(text.contains("enforced with a seccomp filter"), "{text}");
        let none = SandboxStatus {
            landlock: LandlockSupport::NotEnabled,
            seccomp: SeccompSupport::Unavailable("no".into()),
        };
        assert!(!none.usable());
        assert!(none.to_string().contains("not enabled"));
        assert!(none.to_string().contains("cannot be enforced here"));
    }
}
