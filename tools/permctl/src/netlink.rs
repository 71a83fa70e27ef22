// SPDX-License-Identifier: GPL-2.0

//! Talking to the `permtcp` generic netlink family through the `neli` crate.
//!
//! neli does the framing: netlink headers, parsing of error messages and their extended-ACK
//! attributes. Every request and every reply of the family is encoded and decoded by
//! `permtcp_logic::ops`, the very code the kernel module runs, so the two sides cannot drift:
//! [`Client::call`] writes an operation's request, [`replies`] and [`reply`] parse what came
//! back.
//!
//! neli's `NlRouter` is not used: in neli 0.7.5 it drops the extended ACK when it converts an
//! error to its typed form, and the kernel's error messages are what users need to read. The
//! plain `NlSocketHandle` parses them correctly.

use neli::{
    consts::{
        genl::{CtrlAttr, CtrlAttrMcastGrp, CtrlCmd},
        nl::{GenlId, NlmF, Nlmsg, NlmsgerrAttr},
        socket::NlFamily,
    },
    err::Nlmsgerr,
    genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, NlattrBuilder},
    nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder},
    socket::synchronous::NlSocketHandle,
    types::{Buffer, GenlBuffer},
    utils::Groups,
    FromBytesWithInput, Size, ToBytes,
};
use permtcp_logic::nla::Writer;
use permtcp_logic::ops::Operation;
use permtcp_logic::uapi::{FAMILY_NAME, FAMILY_VERSION, MCGRP_EVENTS};
use std::fmt;

/// Why a request failed.
#[derive(Debug)]
pub enum CtlError {
    /// The generic netlink family does not exist: the module is not loaded.
    NotLoaded,
    /// The kernel refused the request.
    Kernel { errno: i32, msg: Option<String> },
    /// Local socket or protocol trouble.
    Transport(String),
    /// A bad argument found before anything was sent.
    Usage(String),
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::NotLoaded => write!(
                f,
                "the permtcp module is not loaded (no generic netlink family '{FAMILY_NAME}')"
            ),
            CtlError::Kernel { errno, msg } => {
                let os = std::io::Error::from_raw_os_error(*errno).to_string();
                let base = os.split(" (os error").next().unwrap_or(&os);
                write!(f, "{base}")?;
                if *errno == 1 || *errno == 13 {
                    write!(f, ": this command needs CAP_NET_ADMIN")?;
                }
                if let Some(m) = msg {
                    write!(f, ": {m}")?;
                }
                Ok(())
            }
            CtlError::Transport(s) => write!(f, "netlink: {s}"),
            CtlError::Usage(s) => write!(f, "{s}"),
        }
    }
}

fn transport(e: impl fmt::Display) -> CtlError {
    CtlError::Transport(e.to_string())
}

fn kernel_error<M>(e: &Nlmsgerr<M>) -> CtlError {
    let msg = e.ext_ack().iter().find_map(|a| {
        (*a.nla_type().nla_type() == NlmsgerrAttr::Msg).then(|| {
            String::from_utf8_lossy(a.nla_payload().as_ref())
                .trim_end_matches('\0')
                .to_string()
        })
    });
    CtlError::Kernel {
        errno: -*e.error(),
        msg,
    }
}

/// Size of `struct genlmsghdr`, which precedes the attributes of every message.
const GENL_HDRLEN: usize = 4;

/// Writes `req`'s attributes.
pub fn encode<O: Operation>(req: &O) -> Result<Vec<u8>, CtlError> {
    // The largest request, a declaration at every limit, takes about 2.5 KiB.
    let mut buf = vec![0u8; 8192];
    let mut w = Writer::new(&mut buf);
    req.write_request(&mut w)
        .map_err(|e| CtlError::Transport(e.text().into()))?;
    let n = w.len();
    buf.truncate(n);
    Ok(buf)
}

fn malformed(e: permtcp_logic::errno::Error) -> CtlError {
    CtlError::Transport(format!("malformed reply: {}", e.text()))
}

/// Parses every reply message of operation `O` (a dump's items).
pub fn replies<O: Operation>(msgs: &[Vec<u8>]) -> Result<Vec<O::Reply<'_>>, CtlError> {
    msgs.iter()
        .map(|m| O::parse_reply(m).map_err(malformed))
        .collect()
}

/// Parses the reply message of operation `O`; `what` names it when the kernel sent none.
pub fn reply<'a, O: Operation>(msgs: &'a [Vec<u8>], what: &str) -> Result<O::Reply<'a>, CtlError> {
    let m = msgs
        .first()
        .ok_or_else(|| CtlError::Transport(format!("malformed reply: no {what}")))?;
    O::parse_reply(m).map_err(malformed)
}

/// A connection to the `permtcp` family.
pub struct Client {
    sock: NlSocketHandle,
    family: u16,
    /// The id of the family's `events` multicast group, once resolved.
    events: Option<u32>,
    seq: std::cell::Cell<u32>,
}

impl Client {
    /// Opens a generic netlink socket and resolves the family.
    pub fn connect() -> Result<Self, CtlError> {
        let sock =
            NlSocketHandle::connect(NlFamily::Generic, None, Groups::empty()).map_err(transport)?;
        sock.enable_ext_ack(true).map_err(transport)?;
        let mut c = Self {
            sock,
            family: 0,
            events: None,
            seq: std::cell::Cell::new(1),
        };
        (c.family, c.events) = c.resolve()?;
        Ok(c)
    }

    /// Opens a route netlink socket (for [`Self::add_address`]).
    pub fn connect_route() -> Result<Self, CtlError> {
        let sock =
            NlSocketHandle::connect(NlFamily::Route, None, Groups::empty()).map_err(transport)?;
        sock.enable_ext_ack(true).map_err(transport)?;
        Ok(Self {
            sock,
            family: 0,
            events: None,
            seq: std::cell::Cell::new(1),
        })
    }

    /// RTM_NEWADDR: `ip` as a host address (/32, /128; IPv6 without duplicate address
    /// detection) on interface `ifindex`; an address already there is kept.
    pub fn add_address(&self, ifindex: u32, ip: std::net::IpAddr) -> Result<(), CtlError> {
        const RTM_NEWADDR: u16 = 20;
        match self.exchange::<u16, Buffer, Buffer>(
            RTM_NEWADDR,
            NlmF::ACK | NlmF::CREATE | NlmF::EXCL,
            Buffer::from(addr_message(ifindex, ip)),
        ) {
            Err(CtlError::Kernel { errno: 17, .. }) => Ok(()), // EEXIST
            r => r.map(|_| ()),
        }
    }

    /// RTM_DELADDR: the host address `ip` off interface `ifindex`; an address not there is
    /// no error.
    pub fn del_address(&self, ifindex: u32, ip: std::net::IpAddr) -> Result<(), CtlError> {
        const RTM_DELADDR: u16 = 21;
        match self.exchange::<u16, Buffer, Buffer>(
            RTM_DELADDR,
            NlmF::ACK,
            Buffer::from(addr_message(ifindex, ip)),
        ) {
            Err(CtlError::Kernel { errno: 99, .. }) => Ok(()), // EADDRNOTAVAIL
            r => r.map(|_| ()),
        }
    }

    /// CTRL_CMD_GETFAMILY for the family name: its id and its `events` group's (a module
    /// older than the group has none); ENOENT means the module is not loaded.
    fn resolve(&self) -> Result<(u16, Option<u32>), CtlError> {
        let name = NlattrBuilder::default()
            .nla_type(
                AttrTypeBuilder::default()
                    .nla_type(CtrlAttr::FamilyName)
                    .build()
                    .map_err(transport)?,
            )
            .nla_payload(FAMILY_NAME)
            .build()
            .map_err(transport)?;
        let msg = GenlmsghdrBuilder::default()
            .cmd(CtrlCmd::Getfamily)
            .version(2)
            .attrs(std::iter::once(name).collect::<GenlBuffer<_, _>>())
            .build()
            .map_err(transport)?;
        let replies = self
            .exchange::<GenlId, Genlmsghdr<CtrlCmd, CtrlAttr>, Genlmsghdr<CtrlCmd, CtrlAttr>>(
                GenlId::Ctrl,
                NlmF::ACK,
                msg,
            );
        let replies = match replies {
            Err(CtlError::Kernel { errno: 2, .. }) => return Err(CtlError::NotLoaded),
            r => r?,
        };
        let id = replies
            .iter()
            .find_map(|m| {
                m.attrs()
                    .get_attr_handle()
                    .get_attr_payload_as::<u16>(CtrlAttr::FamilyId)
                    .ok()
            })
            .ok_or(CtlError::NotLoaded)?;
        let events = replies.iter().find_map(|m| {
            let handle = m.attrs().get_attr_handle();
            let groups = handle
                .get_nested_attributes::<u16>(CtrlAttr::McastGroups)
                .ok()?;
            groups.iter().find_map(|g| {
                let g = g.get_attr_handle::<CtrlAttrMcastGrp>().ok()?;
                let name = g
                    .get_attr_payload_as_with_len::<String>(CtrlAttrMcastGrp::Name)
                    .ok()?;
                (name == MCGRP_EVENTS)
                    .then(|| g.get_attr_payload_as::<u32>(CtrlAttrMcastGrp::Id).ok())?
            })
        });
        Ok((id, events))
    }

    /// Joins the family's `events` multicast group.
    pub fn subscribe_events(&self) -> Result<(), CtlError> {
        let id = self.events.ok_or_else(|| {
            CtlError::Transport("the module has no events multicast group".into())
        })?;
        self.sock
            .add_mcast_membership(Groups::new_groups(&[id]))
            .map_err(transport)
    }

    /// Waits for the next notifications of the family: each one's command and attributes.
    pub fn next_events(&self) -> Result<Vec<(u8, Vec<u8>)>, CtlError> {
        let (msgs, _) = self.sock.recv::<u16, Buffer>().map_err(transport)?;
        let mut out = Vec::new();
        for m in msgs {
            let m: Nlmsghdr<u16, Buffer> = m.map_err(transport)?;
            if *m.nl_type() != self.family {
                continue;
            }
            if let NlPayload::Payload(p) = m.nl_payload() {
                let b = p.as_ref();
                if b.len() >= GENL_HDRLEN {
                    out.push((b[0], b[GENL_HDRLEN..].to_vec()));
                }
            }
        }
        Ok(out)
    }

    /// Sends one request and collects the payloads of its replies until the ACK (or, for a
    /// dump, NLMSG_DONE). A kernel error becomes [`CtlError::Kernel`] with its extack message.
    fn exchange<T, SP, RP>(&self, ty: T, flags: NlmF, payload: SP) -> Result<Vec<RP>, CtlError>
    where
        T: neli::consts::nl::NlType + fmt::Debug,
        SP: Size + ToBytes + fmt::Debug,
        RP: Size + FromBytesWithInput<Input = usize> + fmt::Debug + Clone,
    {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1));
        let dump = flags.contains(NlmF::DUMP);
        let msg = NlmsghdrBuilder::default()
            .nl_type(ty)
            .nl_flags(flags | NlmF::REQUEST)
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(payload))
            .build()
            .map_err(transport)?;
        self.sock.send(&msg).map_err(transport)?;
        let mut out = Vec::new();
        loop {
            let (msgs, _) = self.sock.recv::<u16, RP>().map_err(transport)?;
            for m in msgs {
                let m: Nlmsghdr<u16, RP> = m.map_err(transport)?;
                if *m.nl_seq() != seq {
                    continue;
                }
                match m.nl_payload() {
                    NlPayload::Err(e) => return Err(kernel_error(e)),
                    NlPayload::Ack(_) => return Ok(out),
                    NlPayload::DumpExtAck(e) if *e.error() != 0 => return Err(kernel_error(e)),
                    // A dump's end carries no item.
                    NlPayload::Payload(p) if *m.nl_type() != u16::from(Nlmsg::Done) => {
                        out.push(p.clone())
                    }
                    _ => {}
                }
                if *m.nl_type() == u16::from(Nlmsg::Done) && dump {
                    return Ok(out);
                }
            }
        }
    }

    /// Sends `req` (its command, as a dump if it is one) and returns the attributes of each
    /// reply message, for [`replies`] or [`reply`] to parse.
    pub fn call<O: Operation>(&self, req: &O) -> Result<Vec<Vec<u8>>, CtlError> {
        self.request(O::CMD, &encode(req)?, O::DUMP)
    }

    /// Sends `cmd` with the attribute bytes `attrs`, unchecked, and returns the attributes of
    /// each reply message. `dump` asks for a multipart dump.
    fn request(&self, cmd: u8, attrs: &[u8], dump: bool) -> Result<Vec<Vec<u8>>, CtlError> {
        // struct genlmsghdr { u8 cmd; u8 version; u16 reserved; } followed by the attributes.
        let mut payload = vec![cmd, FAMILY_VERSION, 0, 0];
        payload.extend_from_slice(attrs);
        let flags = if dump { NlmF::DUMP } else { NlmF::ACK };
        let replies =
            self.exchange::<u16, Buffer, Buffer>(self.family, flags, Buffer::from(payload))?;
        Ok(replies
            .iter()
            .map(|b| b.as_ref().get(GENL_HDRLEN..).unwrap_or_default().to_vec())
            .collect())
    }

    /// Sends `cmd` with the attribute bytes `attrs` (a `doit`) and returns the attributes of
    /// each reply message: for requests whose list borrows the caller's data.
    pub(crate) fn request_doit(&self, cmd: u8, attrs: &[u8]) -> Result<Vec<Vec<u8>>, CtlError> {
        self.request(cmd, attrs, false)
    }

    /// Sends `cmd` with an arbitrary, unchecked attribute payload: a testing aid for the
    /// kernel's validation (malformed lengths, unknown attributes). Returns the number of
    /// reply messages.
    pub fn request_raw(&self, cmd: u8, attrs: &[u8], dump: bool) -> Result<usize, CtlError> {
        self.request(cmd, attrs, dump).map(|r| r.len())
    }
}

/// An address message (`struct ifaddrmsg` and its attributes) for `ip` as a host address
/// (/32, /128; IPv6 without duplicate address detection) on interface `ifindex`.
fn addr_message(ifindex: u32, ip: std::net::IpAddr) -> Vec<u8> {
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    const IFA_FLAGS: u16 = 8;
    const IFA_F_NODAD: u32 = 0x02;
    let (family, prefix, bytes): (u8, u8, Vec<u8>) = match ip {
        std::net::IpAddr::V4(a) => (2, 32, a.octets().to_vec()),
        std::net::IpAddr::V6(a) => (10, 128, a.octets().to_vec()),
    };
    // struct ifaddrmsg, then the attributes.
    let mut p = vec![family, prefix, 0, 0];
    p.extend(ifindex.to_ne_bytes());
    let mut attr = |kind: u16, data: &[u8]| {
        p.extend(((4 + data.len()) as u16).to_ne_bytes());
        p.extend(kind.to_ne_bytes());
        p.extend(data);
        p.resize(p.len().next_multiple_of(4), 0);
    };
    attr(IFA_LOCAL, &bytes);
    attr(IFA_ADDRESS, &bytes);
    if family == 10 {
        attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
    }
    p
}
