//! Landlock and seccomp, applied by the launcher to itself just before it execs the command.

use std::collections::BTreeMap;

use landlock::{
    ABI, AccessFs, AccessNet, BitFlags, LandlockStatus, RestrictSelf, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
};
use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{LandlockSupport, NetworkFilter, SandboxError, SandboxPolicy, SeccompSupport};

/// The kernel's Landlock status, probed without restricting anything: with no flags and
/// `no_new_privs` off, `RestrictSelf::apply` only reports what the kernel supports.
fn landlock_status() -> Result<LandlockStatus, String> {
    RestrictSelf::default()
        .no_new_privs(false)
        .apply()
        .map(|status| status.landlock)
        .map_err(|error| error.to_string())
}

pub(super) fn landlock_support() -> LandlockSupport {
    match landlock_status() {
        Ok(LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        }) => LandlockSupport::Available {
            abi: abi_number(effective_abi),
            kernel_abi,
        },
        Ok(LandlockStatus::NotEnabled) => LandlockSupport::NotEnabled,
        Ok(_) | Err(_) => LandlockSupport::NotImplemented,
    }
}

fn abi_number(abi: ABI) -> u32 {
    // The crate prints an available ABI as its number.
    abi.to_string().parse().unwrap_or(0)
}

pub(super) fn seccomp_support() -> SeccompSupport {
    let arch = std::env::consts::ARCH;
    if TargetArch::try_from(arch).is_err() {
        return SeccompSupport::Unavailable(format!(
            "keel's seccomp filter is not built for {arch}"
        ));
    }
    // Kernels with seccomp filters list `Seccomp_filters` in /proc/self/status (5.9+); older
    // ones only `Seccomp`, which is enough to try.
    match std::fs::read_to_string("/proc/self/status") {
        Ok(text) if text.lines().any(|l| l.starts_with("Seccomp:")) => {
            SeccompSupport::Available { arch }
        }
        Ok(_) => SeccompSupport::Unavailable("the kernel is built without seccomp".to_string()),
        Err(error) => {
            SeccompSupport::Unavailable(format!("cannot read /proc/self/status: {error}"))
        }
    }
}

/// Restricts the calling thread (which then execs, so the whole command is restricted).
pub(super) fn restrict(policy: &SandboxPolicy) -> Result<(), SandboxError> {
    let abi = match landlock_status() {
        Ok(LandlockStatus::Available { effective_abi, .. }) => effective_abi,
        Ok(LandlockStatus::NotEnabled) => {
            return Err(SandboxError::Unavailable(
                "Landlock is built into the kernel but not enabled".to_string(),
            ));
        }
        Ok(_) => {
            return Err(SandboxError::Unavailable(
                "the kernel has no Landlock (it needs Linux 5.13 or newer)".to_string(),
            ));
        }
        Err(error) => return Err(SandboxError::Unavailable(error)),
    };
    let block_network = !policy.network;
    let landlock_net =
        block_network && policy.network_filter != NetworkFilter::Seccomp && abi >= ABI::V4;
    if block_network && policy.network_filter == NetworkFilter::Landlock && !landlock_net {
        return Err(SandboxError::Network(format!(
            "Landlock network rules need ABI 4 (Linux 6.7); this kernel has ABI {}",
            abi_number(abi)
        )));
    }
    let use_seccomp = block_network && policy.network_filter != NetworkFilter::Landlock;
    // Compiled before anything is restricted, so a failure leaves nothing half-applied.
    let seccomp = if use_seccomp {
        match network_filter() {
            Ok(program) => Some(program),
            // Landlock alone still stops TCP; without it nothing would stop anything.
            Err(_) if policy.network_filter == NetworkFilter::Auto && landlock_net => None,
            Err(error) => return Err(error),
        }
    } else {
        None
    };

    let access = write_access(abi);
    let landlock_error = |error: landlock::RulesetError| SandboxError::Landlock(error.to_string());
    let mut ruleset = Ruleset::default()
        .handle_access(access)
        .map_err(landlock_error)?;
    if landlock_net {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(landlock_error)?;
    }
    let status = ruleset
        .create()
        .map_err(landlock_error)?
        // Missing paths are skipped (a machine without /dev/tty); files get file rights only.
        .add_rules(path_beneath_rules(policy.effective_writable(), access))
        .map_err(landlock_error)?
        .restrict_self()
        .map_err(landlock_error)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(SandboxError::Unavailable(
            "Landlock accepted the rules but enforces none of them".to_string(),
        ));
    }
    if let Some(program) = seccomp {
        seccompiler::apply_filter(&program)
            .map_err(|error| SandboxError::Network(error.to_string()))?;
    }
    Ok(())
}

/// Every write right the kernel knows, except device ioctls (terminals need them and they
/// do not write files) and connecting to UNIX sockets (agents, language servers).
fn write_access(abi: ABI) -> BitFlags<AccessFs> {
    let mut access = AccessFs::from_write(abi);
    access.remove(AccessFs::IoctlDev);
    access.remove(AccessFs::ResolveUnix);
    access
}

/// A seccomp program that makes `socket(AF_INET | AF_INET6 | AF_PACKET, …)` and
/// `io_uring_setup` fail with EACCES and allows everything else.
fn network_filter() -> Result<BpfProgram, SandboxError> {
    let error = |e: seccompiler::BackendError| SandboxError::Network(e.to_string());
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SandboxError::Network(e.to_string()))?;
    let family = |domain: libc::c_int| -> Result<SeccompRule, SandboxError> {
        let condition = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            u64::try_from(domain).unwrap_or_default(),
        )
        .map_err(error)?;
        SeccompRule::new(vec![condition]).map_err(error)
    };
    let inet = || -> Result<Vec<SeccompRule>, SandboxError> {
        Ok(vec![
            family(libc::AF_INET)?,
            family(libc::AF_INET6)?,
            family(libc::AF_PACKET)?,
        ])
    };
    let mut rules = BTreeMap::new();
    rules.insert(libc::SYS_socket, inet()?);
    // An empty rule list matches every call.
    rules.insert(libc::SYS_io_uring_setup, Vec::new());
    // x32 programs use the same architecture tag with bit 30 set in the syscall number; the
    // filter kills other architectures (i386) outright.
    #[cfg(target_arch = "x86_64")]
    {
        const X32_SYSCALL_BIT: i64 = 0x4000_0000;
        rules.insert(X32_SYSCALL_BIT | libc::SYS_socket, inet()?);
        rules.insert(X32_SYSCALL_BIT | libc::SYS_io_uring_setup, Vec::new());
    }
    let errno = u32::try_from(libc::EACCES).unwrap_or(1);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        arch,
    )
    .map_err(error)?;
    BpfProgram::try_from(filter).map_err(error)
}
