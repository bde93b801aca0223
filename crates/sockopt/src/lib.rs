//! `SO_RCVLOWAT` for TCP sockets (socket(7), "SO_RCVLOWAT"; Linux tcp(7) honours it for both
//! `poll`/`epoll` readiness and wakeups since 4.x).
//!
//! The receive low watermark is the number of queued bytes below which the kernel neither wakes a
//! reader nor reports the socket readable (end of stream and errors still do). The RTMP driver uses
//! it to be woken once per complete media message or batch instead of once per TCP segment; see
//! `rtmp_ingest::server`.
//!
//! Neither `socket2`, `nix` nor `rustix` exposes this option, and the workspace forbids `unsafe`.
//! This crate is the exception: one `setsockopt` and one `getsockopt` call with a `c_int` value,
//! on a descriptor borrowed for the duration of the call. Nothing else in Sluice uses `unsafe`.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Sets `SO_RCVLOWAT` on `socket` to `bytes` (clamped to `1..=i32::MAX`).
///
/// The kernel may clamp it further (Linux: to half the receive buffer limit). On platforms where
/// the option is not honoured for readiness this is still a valid call; callers must not depend on
/// it for correctness, only for fewer wakeups.
pub fn set_recv_low_watermark(socket: &impl AsFd, bytes: usize) -> io::Result<()> {
    let value: libc::c_int = bytes.clamp(1, libc::c_int::MAX as usize) as libc::c_int;
    let fd = socket.as_fd();
    // SAFETY: `fd` is a valid open descriptor for the whole call (borrowed through `AsFd`);
    // the option value points at a live, properly aligned `c_int` and its exact size is passed.
    // setsockopt does not retain the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `SO_RCVLOWAT` back (the value in effect after any kernel clamping).
pub fn recv_low_watermark(socket: &impl AsFd) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let fd = socket.as_fd();
    // SAFETY: as above; `value` and `len` are live locals the kernel writes at most
    // `size_of::<c_int>()` bytes into, and `len` tells it so.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value.max(0) as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn round_trips_and_clamps() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(recv_low_watermark(&s).unwrap(), 1);
        set_recv_low_watermark(&s, 4096).unwrap();
        assert_eq!(recv_low_watermark(&s).unwrap(), 4096);
        set_recv_low_watermark(&s, 0).unwrap();
        assert_eq!(recv_low_watermark(&s).unwrap(), 1);
    }

    /// The exception stays an exception: every other crate of the workspace (and xtask) takes
    /// the workspace lints, which forbid `unsafe_code`.
    #[test]
    fn every_other_crate_forbids_unsafe() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(workspace.contains("unsafe_code = \"forbid\""));
        let mut manifests = vec![root.join("xtask/Cargo.toml")];
        for dir in std::fs::read_dir(root.join("crates")).unwrap() {
            let dir = dir.unwrap().path();
            if dir.file_name().is_some_and(|n| n != "sockopt") {
                manifests.push(dir.join("Cargo.toml"));
            }
        }
        for m in manifests {
            let text = std::fs::read_to_string(&m).unwrap();
            assert!(
                text.contains("[lints]\nworkspace = true"),
                "{} must use the workspace lints (unsafe_code = forbid)",
                m.display()
            );
        }
    }

    #[test]
    fn bad_descriptor_is_an_error_not_a_crash() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(set_recv_low_watermark(&f, 10).is_err());
    }

    /// The behaviour the RTMP driver relies on: no readiness below the watermark, readiness as soon
    /// as it is reached, and end of stream always reported.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn readiness_waits_for_the_watermark() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().await.unwrap();
        // tokio assumes a freshly registered socket is ready; one WouldBlock read clears that.
        let mut buf = [0u8; 2000];
        assert_eq!(
            s.try_read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        set_recv_low_watermark(&s, 1000).unwrap();
        c.write_all(&[0u8; 10]).unwrap();
        let early = tokio::time::timeout(
            Duration::from_millis(200),
            s.ready(tokio::io::Interest::READABLE),
        )
        .await;
        assert!(early.is_err(), "readable below the watermark: {early:?}");
        c.write_all(&[0u8; 990]).unwrap();
        tokio::time::timeout(Duration::from_secs(5), s.readable())
            .await
            .expect("not readable at the watermark")
            .unwrap();
        let mut got = 0;
        while got < 1000 {
            match s.try_read(&mut buf) {
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.readable().await.unwrap(),
                Err(e) => panic!("{e}"),
            }
        }
        c.write_all(&[0u8; 5]).unwrap();
        drop(c);
        tokio::time::timeout(Duration::from_secs(5), s.readable())
            .await
            .expect("end of stream not reported below the watermark")
            .unwrap();
    }
}
