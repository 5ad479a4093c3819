//! Taking over (`--handover PATH`), the new daemon's side, at start-up: connect to the daemon
//! serving PATH, check who it is, receive its sockets by name (`proto::handover::Taker`),
//! and give each of this daemon's instances the socket of the same name, its options checked
//! and set again. Once every socket is bound, [`Takeover::ready`] tells the old daemon, which
//! then stops using them and drains. The old daemon's side is `handover.rs`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{debug, info};
use socket2::{Socket, Type};

use crate::config::{Instance, SocketOptions};
use crate::os::handover as unix;
use crate::os::sockets::reason;
use crate::proto::handover::{Input, Taker, MAX_RECORD};
use crate::proto::Transport;

/// How long either side waits for the other: for each record of the exchange here, and for
/// the new daemon to be ready on the old daemon's side.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The name the handover socket itself is offered under.
pub(crate) const HANDOVER_NAME: &str = "handover";

/// The name an instance's socket is offered and taken under: its transport, service and the
/// address as the command line gave it (port 0 included), so the same command line finds the
/// same sockets.
pub(crate) fn name(asked: &Instance) -> String {
    format!("{} {} {}", asked.transport, asked.service, asked.addr)
}

/// Whether a peer's user may take part in a handover: root, or the user the daemon serves as.
pub(crate) fn trusted(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_uid
}

/// The sockets received from the running daemon, until this daemon says it is ready.
#[derive(Debug)]
pub(crate) struct Takeover {
    conn: Socket,
    path: PathBuf,
    /// The running daemon's process id, as it said.
    pid: u32,
    /// The sockets offered, by name, in the order offered; `None` once taken.
    offered: Vec<(String, Option<OwnedFd>)>,
    /// The indexes of those taken, in the order taken.
    taken: Vec<usize>,
}

impl Takeover {
    /// Takes the sockets of the daemon serving `path`. `None` when no daemon serves it: no
    /// file there, or a stale socket file, which is removed. `uid` is the user this daemon
    /// serves as. The error says why the takeover cannot be done.
    pub(crate) fn connect(path: &Path, uid: u32) -> Result<Option<Takeover>, String> {
        let shown = path.display();
        match unix::unsafe_directory(path, uid) {
            Ok(None) => {}
            Ok(Some(why)) => return Err(format!("--handover {shown}: {why}")),
            Err(e) => return Err(format!("--handover {shown}: {}", reason(&e))),
        }
        let conn = match unix::connect(path, WAIT) {
            Ok(conn) => conn,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                let stale = std::fs::symlink_metadata(path).map(|m| m.file_type().is_socket());
                if !matches!(stale, Ok(true)) {
                    return Err(format!("--handover {shown}: it is not a socket"));
                }
                debug!("handover: {shown} is a socket nobody serves: removed");
                std::fs::remove_file(path)
                    .map_err(|e| format!("--handover {shown}: cannot remove it: {}", reason(&e)))?;
                return Ok(None);
            }
            Err(e) => return Err(format!("--handover {shown}: {}", reason(&e))),
        };
        let (peer, _) = unix::peer_cred(conn.as_raw_fd())
            .map_err(|e| format!("--handover {shown}: {}", reason(&e)))?;
        if !trusted(peer, uid) {
            return Err(format!(
                "--handover {shown}: the daemon there runs as user {peer}, neither root nor \
                 this daemon's user ({uid})"
            ));
        }
        info!("handover: connected to the daemon on {shown}");
        let (offered, pid) = receive(&conn).map_err(|why| format!("handover: {why}"))?;
        info!(
            "handover: took {} socket(s) from the daemon on {shown} (pid {pid})",
            offered.len()
        );
        Ok(Some(Takeover {
            conn,
            path: path.to_path_buf(),
            pid,
            offered: offered.into_iter().map(|(n, fd)| (n, Some(fd))).collect(),
            taken: Vec::new(),
        }))
    }

    /// The running daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The socket offered as `name`, once.
    pub(crate) fn take(&mut self, name: &str) -> Option<OwnedFd> {
        let (i, (_, fd)) = self
            .offered
            .iter_mut()
            .enumerate()
            .find(|(_, (n, fd))| n == name && fd.is_some())?;
        self.taken.push(i);
        fd.take()
    }

    /// Says ready, naming the sockets taken: the old daemon stops using them and drains. The
    /// sockets offered but not taken are closed here (the old daemon closes its own as it
    /// exits).
    pub(crate) fn ready(self) -> io::Result<u32> {
        for (name, fd) in &self.offered {
            if fd.is_some() {
                info!("handover: {name} is not among this daemon's instances: left to the old daemon, which closes it");
            }
        }
        unix::send(&self.conn, &Taker::ready(self.taken).encode(), &[])?;
        info!(
            "handover: ready: the daemon on {} (pid {}) stops serving",
            self.path.display(),
            self.pid
        );
        Ok(self.pid)
    }
}

/// The exchange up to the last offer: the sockets by name, and the old daemon's pid.
fn receive(conn: &Socket) -> Result<(Vec<(String, OwnedFd)>, u32), String> {
    let (mut taker, hello) = Taker::start();
    // A daemon that refuses says why as it accepts, then closes: the hello may then find the
    // connection closed, or, left unread there, make the first read report a reset; the
    // refusal still waits to be read.
    let mut reset_seen = false;
    if let Err(e) = unix::send(conn, &hello.encode(), &[]) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            let why = reason(&e);
            return Err(format!("the running daemon did not take the hello: {why}"));
        }
    }
    let mut fds = Vec::new();
    let mut buf = [0u8; MAX_RECORD];
    loop {
        match unix::recv(conn, &mut buf) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !reset_seen => {
                reset_seen = true;
                continue;
            }
            Ok((0, _)) => taker.on(Input::Closed),
            Ok((n, got)) => {
                taker.on(Input::Record(&buf[..n], got.len()));
                fds.extend(got);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                taker.on(Input::TimedOut)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("the exchange failed: {}", reason(&e))),
        }
        match taker {
            Taker::Receiving { .. } => {}
            Taker::Offered { names, pid } => {
                return Ok((names.into_iter().zip(fds).collect(), pid))
            }
            Taker::Failed(why) => return Err(why),
        }
    }
}

/// A socket taken for `asked`, checked: its kind, and the options that cannot change after
/// bind, must be as asked. The error names what differs. Nothing is set on it yet: the
/// running daemon serves it as it was (see [`set_again`]).
pub(crate) fn adopt(fd: OwnedFd, asked: &Instance, opts: &SocketOptions) -> Result<Socket, String> {
    let socket = Socket::from(fd);
    let what = format!("--handover: the socket of {}", name(asked));
    let inspect = |e: io::Error| format!("{what} cannot be inspected: {}", reason(&e));
    let kind = socket.r#type().map_err(inspect)?;
    let fits = match asked.transport {
        Transport::Tcp => kind == Type::STREAM && socket.is_listener().map_err(inspect)?,
        Transport::Udp => kind == Type::DGRAM,
    };
    if !fits {
        return Err(format!("{what} is not a {} socket", asked.transport));
    }
    let on = |b: bool| if b { "on" } else { "off" };
    let mut fixed = vec![(
        "--reuseport",
        on(socket.reuse_port().map_err(inspect)?),
        on(opts.reuse_port),
    )];
    if asked.addr.is_ipv6() {
        fixed.push((
            "--ipv6-only",
            on(socket.only_v6().map_err(inspect)?),
            on(opts.ipv6_only),
        ));
    }
    let device = socket.device().map_err(inspect)?;
    let device = device.as_deref().map(String::from_utf8_lossy);
    fixed.push((
        "--bind-device",
        device.as_deref().unwrap_or("none"),
        opts.bind_device.as_deref().unwrap_or("none"),
    ));
    if let Some((flag, was, now)) = fixed.into_iter().find(|(_, was, now)| was != now) {
        return Err(format!(
            "{what} has {flag} {was}, this daemon asks for {now}: it cannot change after \
             bind (stop the old daemon to change it)"
        ));
    }
    Ok(socket)
}

/// The options of a socket taken for `asked` that may change set again as this daemon is
/// configured (and `backlog` by listening again): once every socket is taken or bound, so that
/// a new daemon that fails before leaves the running one's sockets as they were.
pub(crate) fn set_again(
    socket: &Socket,
    asked: &Instance,
    opts: &SocketOptions,
    backlog: i32,
) -> Result<(), String> {
    crate::os::sockets::set_again(socket, asked.transport, opts, backlog).map_err(|e| {
        format!(
            "--handover: the socket of {}: its options cannot be set: {}",
            name(asked),
            reason(&e)
        )
    })
}
