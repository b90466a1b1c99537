//! The process's file-descriptor limit, raised at start to what the relay is set to hold.
//!
//! Every WebSocket is a descriptor, and Linux starts processes with a soft limit of 1,024 (or
//! whatever the service manager sets), far below `--max-connections`. The soft limit is
//! raised up to the hard one without privileges; a privileged process may raise the hard one.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept for everything but WebSockets: the database and its WAL, the writer's and
/// the pool's connections, blob files being read or written, the listener, logs.
pub const RESERVED_FDS: u64 = 256;

/// Raises the open-file limit towards `want`; returns the soft limit now in effect.
pub fn raise_fd_limit(want: u64) -> u64 {
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    let hard = now.maximum.unwrap_or(u64::MAX);
    // First within the hard limit (always allowed), then above it (needs privileges).
    let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want.min(hard)), maximum: now.maximum });
    if want > hard {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: Some(want) });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_within_the_hard_limit_and_never_lowered() {
        let before = getrlimit(Resource::Nofile);
        let soft = before.current.unwrap_or(u64::MAX);
        assert_eq!(raise_fd_limit(16), soft, "a lower wish lowers nothing");
        let hard = before.maximum.unwrap_or(u64::MAX);
        let want = hard.min(soft.saturating_add(1));
        assert!(raise_fd_limit(want) >= want, "raised up to the hard limit without privileges");
    }
}
