// SPDX-License-Identifier: GPL-2.0

//! Talking to the `permtcp` generic netlink family through the `neli` crate.
//!
//! neli does the framing: netlink and generic netlink headers, attribute headers, parsing of
//! error messages and their extended-ACK attributes. The attribute *contents* are encoded and
//! decoded by `permtcp-logic`, the very code the kernel module runs, so the two sides cannot
//! drift.
//!
//! neli's `NlRouter` is not used: in neli 0.7.5 it drops the extended ACK when it converts an
//! error to its typed form, and the kernel's error messages are what users need to read. The
//! plain `NlSocketHandle` parses them correctly.

use neli::{
    consts::{
        genl::{CtrlAttr, CtrlCmd},
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
use permtcp_logic::nla::Attrs;
use permtcp_logic::uapi::{FAMILY_NAME, FAMILY_VERSION};
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

/// One reply message: its top-level attributes as (type, payload) pairs.
pub type ReplyAttrs = Vec<(u16, Vec<u8>)>;

/// The u32 attributes `kind` of one reply message, in order (an attribute may repeat).
pub fn u32s(attrs: &ReplyAttrs, kind: u16) -> impl Iterator<Item = u32> + '_ {
    attrs
        .iter()
        .filter(move |(k, _)| *k == kind)
        .filter_map(|(_, v)| Some(u32::from_ne_bytes(v.as_slice().try_into().ok()?)))
}

/// The first u32 attribute `kind` of one reply message.
pub fn u32_of(attrs: &ReplyAttrs, kind: u16) -> Option<u32> {
    u32s(attrs, kind).next()
}

/// The first u64 attribute `kind` of one reply message.
pub fn u64_of(attrs: &ReplyAttrs, kind: u16) -> Option<u64> {
    attrs
        .iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, v)| Some(u64::from_ne_bytes(v.as_slice().try_into().ok()?)))
}

/// The first u32 attribute `kind` of a request's replies.
pub fn reply_u32(replies: &[ReplyAttrs], kind: u16) -> Option<u32> {
    replies.iter().find_map(|a| u32_of(a, kind))
}

/// The first u64 attribute `kind` of a request's replies.
pub fn reply_u64(replies: &[ReplyAttrs], kind: u16) -> Option<u64> {
    replies.iter().find_map(|a| u64_of(a, kind))
}

/// A connection to the `permtcp` family.
pub struct Client {
    sock: NlSocketHandle,
    family: u16,
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
            seq: std::cell::Cell::new(1),
        };
        c.family = c.resolve()?;
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
            seq: std::cell::Cell::new(1),
        })
    }

    /// RTM_NEWADDR: `ip` as a host address (/32, /128; IPv6 without duplicate address
    /// detection) on interface `ifindex`; an address already there is kept.
    pub fn add_address(&self, ifindex: u32, ip: std::net::IpAddr) -> Result<(), CtlError> {
        const RTM_NEWADDR: u16 = 20;
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
        match self.exchange::<u16, Buffer, Buffer>(
            RTM_NEWADDR,
            NlmF::ACK | NlmF::CREATE | NlmF::EXCL,
            Buffer::from(p),
        ) {
            Err(CtlError::Kernel { errno: 17, .. }) => Ok(()), // EEXIST
            r => r.map(|_| ()),
        }
    }

    /// CTRL_CMD_GETFAMILY for the family name; ENOENT means the module is not loaded.
    fn resolve(&self) -> Result<u16, CtlError> {
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
        replies
            .iter()
            .find_map(|m| {
                m.attrs()
                    .get_attr_handle()
                    .get_attr_payload_as::<u16>(CtrlAttr::FamilyId)
                    .ok()
            })
            .ok_or(CtlError::NotLoaded)
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
                    NlPayload::Payload(p) => out.push(p.clone()),
                    _ => {}
                }
                if *m.nl_type() == u16::from(Nlmsg::Done) && dump {
                    return Ok(out);
                }
            }
        }
    }

    /// Sends `cmd` with the attribute stream `attrs` (as `permtcp_logic::nla::Writer` made it)
    /// and collects the replies. `dump` asks for a multipart dump.
    pub fn request(&self, cmd: u8, attrs: &[u8], dump: bool) -> Result<Vec<ReplyAttrs>, CtlError> {
        let mut buffer = GenlBuffer::<u16, Buffer>::new();
        for a in Attrs::new(attrs) {
            let a = a.map_err(|e| CtlError::Transport(e.text().into()))?;
            let attr = NlattrBuilder::default()
                .nla_type(
                    AttrTypeBuilder::default()
                        .nla_type(a.kind)
                        .nla_nested(a.is_nested)
                        .build()
                        .map_err(transport)?,
                )
                .nla_payload(Buffer::from(a.data))
                .build()
                .map_err(transport)?;
            buffer.push(attr);
        }
        let msg = GenlmsghdrBuilder::default()
            .cmd(cmd)
            .version(FAMILY_VERSION)
            .attrs(buffer)
            .build()
            .map_err(transport)?;
        let flags = if dump { NlmF::DUMP } else { NlmF::ACK };
        let replies = self.exchange::<u16, Genlmsghdr<u8, u16>, Genlmsghdr<u8, u16>>(
            self.family,
            flags,
            msg,
        )?;
        Ok(replies
            .iter()
            .map(|p| {
                p.attrs()
                    .iter()
                    .map(|a| (*a.nla_type().nla_type(), a.nla_payload().as_ref().to_vec()))
                    .collect()
            })
            .collect())
    }

    /// Sends `cmd` with an arbitrary, unchecked attribute payload: a testing aid for the
    /// kernel's validation (malformed lengths, unknown attributes). Returns the number of
    /// reply messages.
    pub fn request_raw(&self, cmd: u8, attrs: &[u8], dump: bool) -> Result<usize, CtlError> {
        // struct genlmsghdr { u8 cmd; u8 version; u16 reserved; } followed by the attributes.
        let mut payload = vec![cmd, FAMILY_VERSION, 0, 0];
        payload.extend_from_slice(attrs);
        let flags = if dump { NlmF::DUMP } else { NlmF::ACK };
        let replies =
            self.exchange::<u16, Buffer, Buffer>(self.family, flags, Buffer::from(payload))?;
        Ok(replies.len())
    }
}
