// SPDX-License-Identifier: GPL-2.0

//! KUnit tests: the shared logic, run inside the test kernel.
//!
//! The host runs a larger suite of the same logic with `cargo test`; these cases prove that
//! the kernel build of those files behaves the same. They run when the module loads on a
//! kernel built with `CONFIG_KUNIT=y`. They never unwrap: a Rust panic in the kernel is an
//! oops, and a failed case must be reported, not crash the test machine.

#[kernel::macros::kunit_tests(permtcp_logic)]
mod tests {
    use crate::logic::decl::{parse_add_request, Declaration, FailoverPolicy, PortRange};
    use crate::logic::errno::{code, Error};
    use crate::logic::nla::{Attrs, Writer};
    use crate::logic::uapi::proto;

    fn range(lo: u16, hi: u16) -> PortRange {
        PortRange {
            lo,
            hi,
            ..Default::default()
        }
    }

    fn sample() -> Declaration {
        let mut d = Declaration {
            node_id: 7,
            proto: proto::TCP,
            ..Default::default()
        };
        assert!(d.addrs4.push([10, 0, 0, 1]).is_ok());
        assert!(d.macs.push([2, 0, 0, 0, 0, 7]).is_ok());
        assert!(d.ranges.push(range(80, 90)).is_ok());
        d
    }

    /// Encodes `d` as a DECL_ADD payload and parses it back.
    fn round_trip(d: &Declaration) -> Result<Declaration, Error> {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf);
        d.write(&mut w)?;
        let n = w.len();
        parse_add_request(&buf[..n])
    }

    fn is_einval(r: Result<Declaration, Error>, msg: &str) -> bool {
        matches!(r, Err(e) if e.errno == code::EINVAL && e.text() == msg)
    }

    #[test]
    fn declaration_round_trip() {
        let d = sample();
        assert_eq!(round_trip(&d), Ok(d));
    }

    #[test]
    fn overlapping_ranges_rejected() {
        let mut d = sample();
        assert!(d.ranges.push(range(85, 100)).is_ok());
        assert!(is_einval(round_trip(&d), "overlapping port ranges"));
    }

    #[test]
    fn peer_list_needs_policy() {
        let mut d = sample();
        assert!(d.ranges.as_mut_slice()[0].peers.push(3).is_ok());
        assert!(d.validate().is_err());
        d.failover = FailoverPolicy::PeerList;
        assert!(d.validate().is_ok());
    }

    #[test]
    fn truncated_attribute_rejected() {
        // nla_len 8 but only 6 bytes present.
        let buf = [8u8, 0, 1, 0, 0, 0];
        let first = Attrs::new(&buf).next();
        assert!(matches!(first, Some(Err(e)) if e.errno == code::EINVAL));
    }

    #[test]
    fn duplicate_node_rejected() {
        let r = sample().conflicts_with(&sample());
        assert!(matches!(r, Err(e) if e.errno == code::EEXIST));
    }
}
