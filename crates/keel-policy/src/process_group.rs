//! Process groups of the shell commands keel starts (tool calls, hooks): each command leads a
//! group of its own, so one signal reaches everything it started.

/// Kills a command's process group (SIGKILL), at the latest when dropped, so no process it
/// started outlives the call, even if the call itself is abandoned.
#[derive(Debug)]
pub struct GroupKiller {
    #[cfg(unix)]
    pgid: Option<nix::unistd::Pid>,
}

impl GroupKiller {
    /// Watches the group led by `leader` (the spawned shell's pid; `None` if it already exited).
    pub fn new(leader: Option<u32>) -> Self {
        #[cfg(unix)]
        {
            let pgid = leader
                .and_then(|pid| i32::try_from(pid).ok())
                .map(nix::unistd::Pid::from_raw);
            Self { pgid }
        }
        #[cfg(not(unix))]
        {
            let _ = leader;
            Self {}
        }
    }

    /// Asks the whole group to stop (SIGTERM), giving its members a chance to clean up;
    /// [`kill`](Self::kill) (or dropping) ends whatever ignores it.
    pub fn terminate(&self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Kills the whole group now.
    pub fn kill(&self) {
        // The group id is the shell's pid. While any member lives the id cannot be reused;
        // once all are gone killpg fails with ESRCH, which is the wanted outcome anyway.
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Leaves the group alone from now on, also when dropped.
    pub fn disarm(&mut self) {
        #[cfg(unix)]
        {
            self.pgid = None;
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}
