// SPDX-License-Identifier: GPL-2.0

//! keepalived mode: the lines keepalived writes to its `vrrp_notify_fifo`, and what this
//! node does about each.
//!
//! keepalived (2.2) writes one line per state change, in order, to the FIFO named by
//! `vrrp_notify_fifo` in its `global_defs`: `INSTANCE "VI_1" MASTER 100` (or `GROUP` for a
//! sync group), the state one of `MASTER`, `BACKUP`, `FAULT`, `STOP`, `DELETED`, and with
//! `notify_priority_changes` also `MASTER_RX_LOWER_PRI`, `MASTER_PRIORITY` and
//! `BACKUP_PRIORITY`; the last field is the priority. Unlike the `notify_*` scripts, which
//! keepalived starts asynchronously and never waits for, the FIFO delivers the changes in
//! order.
//!
//! When this node becomes `MASTER` of an instance the configuration maps to an owner node,
//! keepalived has moved that owner's address here: this node takes the owner's connections
//! over (without assuming the address, which keepalived holds) and tells the other peers,
//! which take over their shares. Everything here is pure: the daemon feeds it lines.

use std::collections::BTreeMap;

/// The kind of object a line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A `vrrp_instance`.
    Instance,
    /// A `vrrp_sync_group`.
    Group,
}

/// A state keepalived reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// This node holds the instance's addresses.
    Master,
    /// Another node does (or nobody, for all this node knows).
    Backup,
    /// The instance is down here (a tracked interface or script failed).
    Fault,
    /// keepalived stopped the instance.
    Stop,
    /// The instance was deleted by a reload.
    Deleted,
    /// A master heard a lower-priority master (`MASTER_RX_LOWER_PRI`).
    MasterRxLowerPri,
    /// The master's priority changed (`MASTER_PRIORITY`).
    MasterPriority,
    /// A backup's priority changed (`BACKUP_PRIORITY`).
    BackupPriority,
}

impl State {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "MASTER" => State::Master,
            "BACKUP" => State::Backup,
            "FAULT" => State::Fault,
            "STOP" => State::Stop,
            "DELETED" => State::Deleted,
            "MASTER_RX_LOWER_PRI" => State::MasterRxLowerPri,
            "MASTER_PRIORITY" => State::MasterPriority,
            "BACKUP_PRIORITY" => State::BackupPriority,
            _ => return None,
        })
    }
}

/// One line of the FIFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Instance or sync group.
    pub scope: Scope,
    /// Its name, without the quotes.
    pub name: String,
    /// The new state.
    pub state: State,
    /// The priority keepalived reported.
    pub priority: u8,
}

/// Why a line is not a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine(pub &'static str);

/// Parses one line (without its newline; a trailing `\r` or blanks are tolerated).
pub fn parse_line(line: &str) -> Result<Notify, BadLine> {
    let line = line.trim_end();
    let (scope, rest) = if let Some(r) = line.strip_prefix("INSTANCE ") {
        (Scope::Instance, r)
    } else if let Some(r) = line.strip_prefix("GROUP ") {
        (Scope::Group, r)
    } else {
        return Err(BadLine("not an INSTANCE or GROUP line"));
    };
    // The name is quoted and may contain blanks; the state and priority follow it.
    let rest = rest
        .strip_prefix('"')
        .ok_or(BadLine("the name is not quoted"))?;
    let end = rest.rfind('"').ok_or(BadLine("the name is not quoted"))?;
    let (name, tail) = (&rest[..end], &rest[end + 1..]);
    if name.is_empty() {
        return Err(BadLine("empty name"));
    }
    let mut f = tail.split_ascii_whitespace();
    let state = f
        .next()
        .and_then(State::parse)
        .ok_or(BadLine("unknown state"))?;
    let priority = f
        .next()
        .and_then(|p| p.parse::<u8>().ok())
        .ok_or(BadLine("no priority"))?;
    if f.next().is_some() {
        return Err(BadLine("trailing fields"));
    }
    Ok(Notify {
        scope,
        name: name.to_string(),
        state,
        priority,
    })
}

/// What the daemon does about a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Take over owner `node` here (keepalived gave this node its address) and tell the
    /// other peers.
    TakeOver {
        /// The owner node.
        node: u32,
        /// The instance that moved.
        instance: String,
    },
    /// This node's own instance left MASTER here: its address went elsewhere (logged; the
    /// owner's fencing is the lease's and keepalived's business).
    LostOwn {
        /// The instance.
        instance: String,
        /// Its new state.
        state: State,
    },
    /// Owner `node`'s instance left MASTER here (it went back to the owner, or elsewhere):
    /// keepalived took the address away; the connections this node serves for `node` keep
    /// it, held quietly (owner recovery).
    Released {
        /// The owner node.
        node: u32,
        /// The instance.
        instance: String,
    },
    /// Nothing to do (another state, an instance not mapped, a group).
    None,
}

/// The instance map of the configuration, and this node's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    /// This node.
    pub self_id: u32,
    /// Instance name to owner node id.
    pub instances: BTreeMap<String, u32>,
}

impl Map {
    /// The owner nodes whose takeover keepalived decides (not permtcpd's own verdicts).
    pub fn owners(&self) -> impl Iterator<Item = u32> + '_ {
        self.instances
            .values()
            .copied()
            .filter(move |&n| n != self.self_id)
    }

    /// Whether keepalived decides `node`'s takeover.
    pub fn manages(&self, node: u32) -> bool {
        self.owners().any(|n| n == node)
    }

    /// What a notification asks of this node. Sync groups are ignored: their instances'
    /// own lines follow them.
    pub fn action(&self, n: &Notify) -> Action {
        if n.scope != Scope::Instance {
            return Action::None;
        }
        let Some(&node) = self.instances.get(&n.name) else {
            return Action::None;
        };
        match n.state {
            State::Master if node != self.self_id => Action::TakeOver {
                node,
                instance: n.name.clone(),
            },
            State::Backup | State::Fault | State::Stop | State::Deleted if node == self.self_id => {
                Action::LostOwn {
                    instance: n.name.clone(),
                    state: n.state,
                }
            }
            State::Backup | State::Fault | State::Stop | State::Deleted => Action::Released {
                node,
                instance: n.name.clone(),
            },
            _ => Action::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Map {
        Map {
            self_id: 2,
            instances: [("VI_1".to_string(), 1), ("VI_2".to_string(), 2)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn parses_keepalived_lines() {
        assert_eq!(
            parse_line("INSTANCE \"VI_1\" MASTER 100").unwrap(),
            Notify {
                scope: Scope::Instance,
                name: "VI_1".into(),
                state: State::Master,
                priority: 100
            }
        );
        let g = parse_line("GROUP \"VG 1\" BACKUP 0\r").unwrap();
        assert_eq!(
            (g.scope, g.name.as_str(), g.state),
            (Scope::Group, "VG 1", State::Backup)
        );
        for (s, st) in [
            ("FAULT", State::Fault),
            ("STOP", State::Stop),
            ("DELETED", State::Deleted),
            ("MASTER_RX_LOWER_PRI", State::MasterRxLowerPri),
            ("MASTER_PRIORITY", State::MasterPriority),
            ("BACKUP_PRIORITY", State::BackupPriority),
        ] {
            assert_eq!(
                parse_line(&format!("INSTANCE \"x\" {s} 255"))
                    .unwrap()
                    .state,
                st
            );
        }
    }

    #[test]
    fn refuses_other_lines() {
        for l in [
            "",
            "VS [192.168.201.15]:tcp:80 UP",
            "RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN",
            "INSTANCE VI_1 MASTER 100",
            "INSTANCE \"\" MASTER 100",
            "INSTANCE \"VI_1 MASTER 100",
            "INSTANCE \"VI_1\" RUNNING 100",
            "INSTANCE \"VI_1\" MASTER",
            "INSTANCE \"VI_1\" MASTER 256",
            "INSTANCE \"VI_1\" MASTER -1",
            "INSTANCE \"VI_1\" MASTER 100 extra",
            "instance \"VI_1\" MASTER 100",
        ] {
            assert!(parse_line(l).is_err(), "{l:?}");
        }
    }

    #[test]
    fn master_of_an_owners_instance_takes_it_over() {
        let m = map();
        let n = parse_line("INSTANCE \"VI_1\" MASTER 100").unwrap();
        assert_eq!(
            m.action(&n),
            Action::TakeOver {
                node: 1,
                instance: "VI_1".into()
            }
        );
        // The owner's instance leaving MASTER here: its address went away from this node.
        for s in ["BACKUP", "FAULT", "STOP", "DELETED"] {
            let n = parse_line(&format!("INSTANCE \"VI_1\" {s} 100")).unwrap();
            assert_eq!(
                m.action(&n),
                Action::Released {
                    node: 1,
                    instance: "VI_1".into()
                },
                "{s}"
            );
        }
        let n = parse_line("INSTANCE \"VI_1\" MASTER_PRIORITY 100").unwrap();
        assert_eq!(m.action(&n), Action::None);
    }

    #[test]
    fn own_instance_and_unmapped_ones() {
        let m = map();
        // MASTER of this node's own instance: it serves, nothing to take over.
        let n = parse_line("INSTANCE \"VI_2\" MASTER 150").unwrap();
        assert_eq!(m.action(&n), Action::None);
        let n = parse_line("INSTANCE \"VI_2\" FAULT 0").unwrap();
        assert_eq!(
            m.action(&n),
            Action::LostOwn {
                instance: "VI_2".into(),
                state: State::Fault
            }
        );
        let n = parse_line("INSTANCE \"VI_9\" MASTER 100").unwrap();
        assert_eq!(m.action(&n), Action::None);
        // A sync group named like a mapped instance: its instances' lines decide.
        let n = parse_line("GROUP \"VI_1\" MASTER 100").unwrap();
        assert_eq!(m.action(&n), Action::None);
        assert!(m.manages(1));
        assert!(!m.manages(2), "this node's own instance");
        assert!(!m.manages(3));
    }
}
