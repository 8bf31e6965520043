//! File descriptors the backend creates inside its namespace (from a thread that joined it,
//! see `Netns::within`): TUN devices, listening sockets, the raw socket for reading
//! tables; and reading what the host sent.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::packet::proto;

const TUNSETIFF: u64 = 0x4004_54ca;
const IFF_TUN: u16 = 0x0001;
const IFF_NO_PI: u16 = 0x1000;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Creates TUN device `name` (`IFF_TUN | IFF_NO_PI`: reads and writes are bare IP
/// packets) in the calling thread's namespace; the descriptor is non-blocking.
pub fn open_tun(name: &str) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path literal.
    let fd = check(unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: char ifr_name[16]; union { short ifr_flags; … } (40 bytes in all).
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: ifr is a valid, large enough struct ifreq.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) })?;
    Ok(fd)
}

/// Opens a listening socket for `(protocol, port)` on the wildcard address; TCP with a
/// large backlog so that floods of SYNs are answered, not cookie-d or dropped.
pub fn listen(v6: bool, pr: u8, port: u16) -> io::Result<OwnedFd> {
    let addr: IpAddr = if v6 { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
    match pr {
        proto::TCP => {
            let l = TcpListener::bind((addr, port))?;
            // SAFETY: a listening socket; listen() again only changes the backlog.
            check(unsafe { libc::listen(l.as_raw_fd(), 4096) })?;
            Ok(OwnedFd::from(l))
        }
        _ => Ok(OwnedFd::from(UdpSocket::bind((addr, port))?)),
    }
}

/// A raw socket (`IPPROTO_RAW`, receives nothing) for `getsockopt` on the tables.
pub fn raw_socket(v6: bool) -> io::Result<OwnedFd> {
    let af = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain syscall.
    let fd = check(unsafe { libc::socket(af, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) })?;
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes one packet to a TUN device.
pub fn write_packet(fd: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: bytes is valid for its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::other(format!("short write to TUN device: {n} of {} bytes", bytes.len())));
    }
    Ok(())
}

/// Reads every packet queued on the TUN devices, waiting up to `settle_ns` for stragglers
/// (the host answers synchronously inside the write in practice). Calls `f(device index,
/// bytes)` for each.
pub fn drain(fds: &[OwnedFd], settle_ns: u64, mut f: impl FnMut(usize, &[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; 65536];
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let mut wait = 0u64;
    loop {
        for (i, fd) in fds.iter().enumerate() {
            loop {
                // SAFETY: buf is valid for its length.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::WouldBlock {
                        break;
                    }
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                f(i, &buf[..n as usize]);
            }
        }
        if wait >= settle_ns {
            return Ok(());
        }
        let ts = libc::timespec { tv_sec: 0, tv_nsec: (settle_ns - wait) as libc::c_long };
        let t0 = super::clock::mono_ns();
        // SAFETY: pfds is valid for its length; ts and a null sigmask are fine.
        let r = unsafe { libc::ppoll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, &ts, std::ptr::null()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if r == 0 {
            return Ok(());
        }
        wait += super::clock::mono_ns() - t0;
    }
}
