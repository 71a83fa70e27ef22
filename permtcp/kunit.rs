// SPDX-License-Identifier: GPL-2.0

//! KUnit tests: the shared logic, run inside the test kernel.
//!
//! The host runs a larger suite of the same logic with `cargo test`; these cases prove that
//! the kernel build of those files (kernel target, kernel allocator-free `core`) behaves the
//! same. They run when the module loads on a kernel built with `CONFIG_KUNIT=y`.

#[kernel::macros::kunit_tests(permtcp_logic)]
mod tests {
    use crate::logic::decl::{parse_add_request, Declaration, FailoverPolicy, PortRange};
    use crate::logic::errno::code;
    use crate::logic::nla::{Attrs, Writer};
    use crate::logic::uapi::proto;

    fn sample() -> Declaration {
        let mut d = Declaration {
            node_id: 7,
            proto: proto::TCP,
            ..Default::default()
        };
        d.addrs4.push([10, 0, 0, 1]).unwrap();
        d.macs.push([2, 0, 0, 0, 0, 7]).unwrap();
        d.ranges
            .push(PortRange {
                lo: 80,
                hi: 90,
                ..Default::default()
            })
            .unwrap();
        d
    }

    fn encode(d: &Declaration, buf: &mut [u8]) -> usize {
        let mut w = Writer::new(buf);
        d.write(&mut w).unwrap();
        w.len()
    }

    #[test]
    fn declaration_round_trip() {
        let d = sample();
        let mut buf = [0u8; 512];
        let n = encode(&d, &mut buf);
        assert_eq!(parse_add_request(&buf[..n]), Ok(d));
    }

    #[test]
    fn overlapping_ranges_rejected() {
        let mut d = sample();
        d.ranges
            .push(PortRange {
                lo: 85,
                hi: 100,
                ..Default::default()
            })
            .unwrap();
        let mut buf = [0u8; 512];
        let n = encode(&d, &mut buf);
        let err = parse_add_request(&buf[..n]).unwrap_err();
        assert_eq!(err.errno, code::EINVAL);
        assert_eq!(err.text(), "overlapping port ranges");
    }

    #[test]
    fn peer_list_needs_policy() {
        let mut d = sample();
        d.ranges.as_mut_slice()[0].peers.push(3).unwrap();
        assert!(d.validate().is_err());
        d.failover = FailoverPolicy::PeerList;
        assert!(d.validate().is_ok());
    }

    #[test]
    fn truncated_attribute_rejected() {
        // nla_len 8 but only 6 bytes present.
        let buf = [8u8, 0, 1, 0, 0, 0];
        let first = Attrs::new(&buf).next().unwrap();
        assert_eq!(first.unwrap_err().errno, code::EINVAL);
    }

    #[test]
    fn duplicate_node_rejected() {
        let a = sample();
        let b = sample();
        assert_eq!(a.conflicts_with(&b).unwrap_err().errno, code::EEXIST);
    }
}
