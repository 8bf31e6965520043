//! Throwaway network namespaces: `fwv-<pid>-<n>`, created with `ip netns add`, deleted on
//! drop and by [`cleanup_all`] (which the command line calls on Ctrl-C/SIGTERM).
//!
//! Only namespaces this module created are ever deleted, plus leftovers named
//! `fwv-<pid>-<n>` whose process `pid` no longer exists (a fwverify run that was killed
//! with SIGKILL cannot clean up after itself).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Names of the namespaces that are alive, for [`cleanup_all`]. Held while a namespace is
/// created, so that a signal cannot slip in between `ip netns add` and registration.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Deletes every namespace this process created and has not deleted yet. Safe to call from
/// a signal-handling thread; afterwards no new namespace can be created until it returns.
pub fn cleanup_all() {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for name in live.drain(..) {
        let _ = delete(&name);
    }
}

/// `ip` from iproute2, by absolute path when found.
fn ip() -> Command {
    Command::new(super::find_program("ip").unwrap_or_else(|| "ip".into()))
}

fn delete(name: &str) -> io::Result<()> {
    let st = ip().args(["netns", "del", name]).stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("`ip netns del {name}` failed")))
    }
}

/// Deletes `fwv-<pid>-<n>` namespaces left by processes that no longer exist.
fn reap_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else { return };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("fwv-") else { continue };
        let Some((pid, n)) = rest.split_once('-') else { continue };
        let (Ok(pid), Ok(_)) = (pid.parse::<i32>(), n.parse::<u32>()) else { continue };
        if pid <= 0 || pid == std::process::id() as i32 {
            continue;
        }
        // kill(pid, 0): ESRCH means no such process; anything else means it may be alive.
        let alive =
            unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
        if !alive {
            let _ = delete(&name);
        }
    }
}

/// A network namespace owned by this process; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    file: File,
}

impl Netns {
    /// Creates a fresh namespace `fwv-<pid>-<n>`.
    pub fn create() -> io::Result<Netns> {
        reap_stale();
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("fwv-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let out = ip().args(["netns", "add", &name]).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`ip netns add {name}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        live.push(name.clone());
        drop(live);
        let file = match File::open(format!("/run/netns/{name}")) {
            Ok(f) => f,
            Err(e) => {
                LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|n| *n != name);
                let _ = delete(&name);
                return Err(e);
            }
        };
        Ok(Netns { name, file })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a thread that has joined this namespace (`setns`), and returns its
    /// result. Sockets and TUN devices created there belong to the namespace for good.
    pub fn within<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        let fd = self.file.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: plain syscall on a valid descriptor; only this thread moves.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace worker panicked")))
        })
    }

    /// `ip netns exec NS program args…` with `input` on stdin; the error carries stderr.
    pub fn exec(&self, program: &str, args: &[&str], input: Option<&[u8]>) -> io::Result<Vec<u8>> {
        let mut cmd = ip();
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let Some(data) = input {
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(data)?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let err = if err.is_empty() { format!("exit status {}", out.status) } else { err };
            return Err(io::Error::other(format!("{program}: {err}")));
        }
        Ok(out.stdout)
    }

    /// Runs `ip [-6] -n NS -batch -` with the given commands, one a line.
    pub fn ip_batch(&self, commands: &str, v6: bool) -> io::Result<()> {
        let family = if v6 { "-6" } else { "-4" };
        let mut child = ip()
            .args([family, "-n", &self.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().expect("piped stdin").write_all(commands.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!("ip: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = live.iter().position(|n| *n == self.name) {
            live.remove(i);
            let _ = delete(&self.name);
        }
    }
}
