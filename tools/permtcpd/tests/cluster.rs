// SPDX-License-Identifier: GPL-2.0

//! Daemons on 127.0.0.1 with fake kernels: a crash is detected in time and taken over once
//! by each peer, with a directive between them; forged, replayed and wrong-key datagrams
//! change nothing and are counted.
//!
//! Timing: heartbeats every 100 ms, 3 missed; the takeover must come within the dead time,
//! the lease wait (a dead time and an interval) and 400 ms of slack for a loaded two-core
//! machine, and not before the lease wait.

use permtcp_logic::handoff::HandoffConn;
use permtcp_logic::packet::Addr;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::snoopnl::DirectiveInfo;
use permtcp_logic::uapi::handoff_status as hs;
use permtcpd::auth::{seal_raw, Auth, DropReason, Keyring};
use permtcpd::config::Config;
use permtcpd::daemon::{Control, Daemon, Handle};
use permtcpd::kernel::{Call, DirectiveResult, FakeKernel};
use permtcpd::wire::{Body, Header, Heartbeat, Kind, NodeDown, NodeState, ViewEntry};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const KEY: &str = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const INTERVAL_MS: u64 = 100;
const MISSED: u32 = 3;
const CLUSTER: u32 = 77;

fn free_ports(n: usize) -> Vec<u16> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// Node `id`'s status socket (unique per test run and port).
fn status_socket(id: u32, ports: &[u16]) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "permtcpd-test-{}-{}.sock",
        std::process::id(),
        ports[id as usize - 1]
    ))
}

fn config(id: u32, ports: &[u16], extra: &str) -> Config {
    let mut text = format!(
        "cluster_id = {CLUSTER}\nnode_id = {id}\nsend_key_id = 1\nbind = [\"127.0.0.1:{}\"]\n\
         heartbeat_interval_ms = {INTERVAL_MS}\nmissed_heartbeats = {MISSED}\n\
         directive_retry_ms = 100\nstatus_socket = \"{}\"\ncontrol_socket = \"{}.ctl\"\n{extra}\n",
        ports[id as usize - 1],
        status_socket(id, ports).display(),
        status_socket(id, ports).display()
    );
    for (i, p) in ports.iter().enumerate() {
        let n = i + 1;
        if n as u32 != id {
            text += &format!("[[peer]]\nnode_id = {n}\naddrs = [\"127.0.0.1:{p}\"]\n");
        }
    }
    text += &format!(
        "[declaration]\naddrs = [\"10.0.0.{id}\"]\nports = [\"80\"]\nmacs = [\"02:00:00:00:00:0{id}\"]\n"
    );
    Config::parse(&text).unwrap()
}

struct Node {
    handle: Handle,
    task: JoinHandle<Result<(), String>>,
    control: mpsc::UnboundedSender<Control>,
}

fn start(id: u32, ports: &[u16], kernel: FakeKernel) -> Node {
    start_with(id, ports, kernel, "")
}

fn start_with(id: u32, ports: &[u16], kernel: FakeKernel, extra: &str) -> Node {
    start_incarnation(id, ports, kernel, extra, 1000 + id as u64)
}

fn start_incarnation(
    id: u32,
    ports: &[u16],
    kernel: FakeKernel,
    extra: &str,
    incarnation: u64,
) -> Node {
    let keys = Keyring::parse(KEY).unwrap();
    let cfg = config(id, ports, extra);
    let (d, handle) = Daemon::new(cfg, keys, incarnation, Arc::new(kernel)).unwrap();
    let (control, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(d.run(std::future::pending(), rx));
    Node {
        handle,
        task,
        control,
    }
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    t0.elapsed()
}

fn conn() -> FlowKey {
    FlowKey {
        owner_addr: Addr::v4([10, 0, 0, 3]),
        client_addr: Addr::v4([192, 0, 2, 9]),
        owner_port: 80,
        client_port: 50000,
    }
}

#[tokio::test]
async fn crash_is_taken_over_once_by_each_peer() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    // Node 1 cannot take the connection and directs it to node 2, which takes it.
    let k1 = FakeKernel::new().with_takeover_directives(vec![DirectiveInfo {
        key: conn(),
        next: 2,
    }]);
    // Node 2's kernel is not ready for it twice (EAGAIN) before it takes it.
    let k2 = FakeKernel::new().with_directive_result(DirectiveResult::Taken { parked: false }, 2);
    let k3 = FakeKernel::new();
    let nodes: Vec<Node> = [(1, &k1), (2, &k2), (3, &k3)]
        .into_iter()
        .map(|(id, k)| start(id, &ports, k.clone()))
        .collect();

    wait_for("declarations and quorum", Duration::from_secs(5), || {
        nodes.iter().all(|n| {
            let s = n.handle.status();
            s.quorum && s.lease && s.declarations.len() == 3
        })
    })
    .await;
    // Every kernel holds the three declarations, its own local.
    for (id, k) in [(1, &k1), (2, &k2), (3, &k3)] {
        wait_for("kernel declarations", Duration::from_secs(2), || {
            k.declarations().len() == 3
        })
        .await;
        let d = k.declarations();
        let mut ids: Vec<u32> = d.iter().map(|d| d.node_id).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(d.iter().all(|d| d.local == (d.node_id == id)));
        assert_eq!(d[0].node_id, id);
        wait_for("a lease renewal", Duration::from_secs(2), || k.leases() > 0).await;
    }

    // Node 3 dies: its task is dropped, with its socket.
    nodes[2].task.abort();
    let dead = Duration::from_millis(INTERVAL_MS) * MISSED;
    let slack = Duration::from_millis(400);
    let t = wait_for("both takeovers", dead + slack, || {
        k1.takeovers_of(3) == 1 && k2.takeovers_of(3) == 1
    })
    .await;
    eprintln!("verdict and takeovers {t:?} after the crash (dead time {dead:?})");
    // The verdict comes at the earliest one dead time after node 3's last heartbeat (at
    // most an interval before the crash), and the takeover at once: node 3's lease, as its
    // daemon last asked its kernel for it, ended before either peer started.
    assert!(
        t + Duration::from_millis(INTERVAL_MS) >= dead,
        "taken over {t:?} after the crash, less than a dead time after it was last heard"
    );
    let lease_end = k3.lease_end().expect("node 3 held a lease");
    for k in [&k1, &k2] {
        let started = k.first_takeover_of(3).unwrap();
        assert!(
            lease_end <= started,
            "a takeover started {:?} before node 3's lease ended",
            lease_end - started
        );
    }
    // The directive reaches node 2 over the authenticated channel and is acknowledged.
    wait_for("the directive's ack", Duration::from_secs(2), || {
        nodes[0].handle.status().acks_received == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for k in [&k1, &k2] {
        assert_eq!(k.takeovers_of(3), 1);
        assert_eq!(k.takeovers_of(1) + k.takeovers_of(2), 0);
    }
    let directives: Vec<Call> = k2
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Directive(_)))
        .collect();
    assert_eq!(directives.len(), 3, "two retries, then taken");
    for d in &directives {
        let Call::Directive(req) = d else {
            unreachable!()
        };
        // From node 1, as authenticated: node 2's kernel acts only as the next peer after it.
        assert_eq!((req.node, req.key, req.from), (3, conn(), Some(1)));
    }
    for n in &nodes[..2] {
        let s = n.handle.status();
        assert!(s.quorum && s.lease, "two of three keep quorum");
        assert_eq!(s.takeovers, vec![3]);
        assert_eq!(s.auth.total_dropped(), 0, "{:?}", s.auth);
        let v3 = s.view.iter().find(|e| e.node == 3).unwrap();
        assert_eq!((v3.state, v3.incarnation), (NodeState::Down, 1003));
    }
    assert_eq!(nodes[0].handle.status().directives_sent, 1);
    assert_eq!(nodes[1].handle.status().directives_applied, 1);
}

#[tokio::test]
async fn forged_and_replayed_datagrams_change_nothing() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    let k1 = FakeKernel::new();
    let k2 = FakeKernel::new();
    let nodes = [start(1, &ports, k1.clone()), start(2, &ports, k2.clone())];
    wait_for("quorum of two", Duration::from_secs(5), || {
        nodes.iter().all(|n| {
            let s = n.handle.status();
            s.quorum && s.declarations.len() == 2
        })
    })
    .await;
    // The test is node 3: it holds the key, on node 3's configured address.
    let sock = UdpSocket::bind(("127.0.0.1", ports[2])).unwrap();
    let to1: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let lo: IpAddr = [127, 0, 0, 1].into();
    let keys = Keyring::parse(KEY).unwrap();
    let peers = HashMap::from([(1, vec![lo]), (2, vec![lo])]);
    let mut me = Auth::new(CLUSTER, 3, 5, keys.clone(), 1, peers).unwrap();
    let heartbeat = Body::Heartbeat(Heartbeat {
        flags: 0,
        decl_version: 0,
        view: vec![ViewEntry {
            node: 3,
            incarnation: 5,
            state: NodeState::Alive,
            heard_seq: 0,
        }],
    });
    let valid = me.seal(1, &heartbeat).unwrap();
    sock.send_to(&valid, to1).unwrap();
    // Node 2 hears it too: a node is declared down only after it was heard.
    let to2: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    sock.send_to(&me.seal(2, &heartbeat).unwrap(), to2).unwrap();
    wait_for("node 3 heard", Duration::from_secs(2), || {
        nodes[0].handle.status().auth.accepted > 0
            && nodes[0]
                .handle
                .status()
                .view
                .iter()
                .any(|e| e.node == 3 && e.incarnation == 5)
    })
    .await;
    // The kernel's calls other than the periodic check of the declarations.
    let calls = |k: &FakeKernel| -> Vec<Call> {
        k.calls()
            .into_iter()
            .filter(|c| !matches!(c, Call::SetDeclarations(_)))
            .collect()
    };
    let calls_before = calls(&k1);
    let decls_before = k1.declarations();
    let before = nodes[0].handle.status().auth;

    // Forgeries of a verdict that node 2 is down.
    let verdict = Body::NodeDown(NodeDown {
        node: 2,
        incarnation: 1002,
        verdict: true,
    })
    .encode()
    .unwrap();
    let h = Header {
        kind: Kind::NodeDown,
        cluster: CLUSTER,
        from: 3,
        to: 1,
        key_id: 1,
        incarnation: 5,
        seq: 1000,
    };
    let other_key =
        Keyring::parse("1 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100")
            .unwrap();
    let forged: Vec<(Vec<u8>, DropReason)> = vec![
        (
            b"PTCD\x01\x03 not a message at all".to_vec(),
            DropReason::Malformed,
        ),
        (
            seal_raw(&keys, &Header { cluster: 78, ..h }, &verdict),
            DropReason::UnknownCluster,
        ),
        (
            seal_raw(&keys, &Header { to: 2, ..h }, &verdict),
            DropReason::Misdirected,
        ),
        (
            seal_raw(&keys, &Header { from: 9, ..h }, &verdict),
            DropReason::UnknownNode,
        ),
        (
            seal_raw(&keys, &Header { key_id: 2, ..h }, &verdict),
            DropReason::UnknownKey,
        ),
        (seal_raw(&other_key, &h, &verdict), DropReason::BadTag),
        (
            seal_raw(
                &keys,
                &Header {
                    incarnation: 4,
                    ..h
                },
                &verdict,
            ),
            DropReason::StaleIncarnation,
        ),
        (valid.clone(), DropReason::Replay),
    ];
    for (d, _) in &forged {
        sock.send_to(d, to1).unwrap();
    }
    // The right key and header from another address.
    let elsewhere = UdpSocket::bind("127.0.0.2:0").unwrap();
    elsewhere
        .send_to(&seal_raw(&keys, &Header { seq: 1001, ..h }, &verdict), to1)
        .unwrap();
    let counted = |r: DropReason| nodes[0].handle.status().auth.get(r) - before.get(r);
    wait_for("every drop counted", Duration::from_secs(2), || {
        forged.iter().all(|(_, r)| counted(*r) == 1) && counted(DropReason::WrongSource) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = nodes[0].handle.status();
    assert_eq!(calls(&k1), calls_before, "the kernel saw nothing");
    assert_eq!(k1.declarations(), decls_before);
    // `permtcpd --status` shows the same counters.
    // (Read on another thread: this test's runtime runs the daemons on this one.)
    let path = status_socket(1, &ports);
    let text = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut text = String::new();
        std::os::unix::net::UnixStream::connect(path)
            .and_then(|mut c| c.read_to_string(&mut text))
            .map(|_| text)
    })
    .await
    .unwrap()
    .unwrap();
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["node"], 1);
    let by_reason = &status["datagrams"]["dropped_by_reason"];
    for r in DropReason::ALL {
        assert_eq!(by_reason[r.name()], s.auth.get(r), "{}", r.name());
    }
    assert!(status["datagrams"]["accepted"].as_u64().unwrap() >= s.auth.accepted);
    assert_eq!(k1.takeovers_of(2), 0);
    let v2 = s.view.iter().find(|e| e.node == 2).unwrap();
    assert_eq!(v2.state, NodeState::Alive);

    // Node 3 goes silent and is declared down; the same incarnation again is a zombie.
    wait_for("node 3 declared down", Duration::from_secs(3), || {
        nodes[0]
            .handle
            .status()
            .view
            .iter()
            .any(|e| e.node == 3 && e.incarnation == 5 && e.state == NodeState::Down)
    })
    .await;
    sock.send_to(&me.seal(1, &heartbeat).unwrap(), to1).unwrap();
    wait_for("split-brain alarm", Duration::from_secs(2), || {
        nodes[0].handle.status().split_brain == 1
    })
    .await;
    // It declared nothing, so there was nothing to take over.
    assert!(k1.calls().iter().all(|c| !matches!(c, Call::Takeover(_))));
    // Declared down once, in incarnation 5: never while it was not heard yet.
    assert_eq!(nodes[0].handle.status().takeovers, vec![3]);
}

#[tokio::test]
async fn lease_renewals_do_not_wait_for_a_takeover() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    // Node 1's takeovers take 2 s (a thousand connections on a slow machine).
    let k1 = FakeKernel::new().with_takeover_delay(Duration::from_secs(2));
    let nodes: Vec<Node> = [
        (1, k1.clone()),
        (2, FakeKernel::new()),
        (3, FakeKernel::new()),
    ]
    .into_iter()
    .map(|(id, k)| start(id, &ports, k))
    .collect();
    wait_for("quorum and leases", Duration::from_secs(5), || {
        nodes.iter().all(|n| n.handle.status().lease)
    })
    .await;
    nodes[2].task.abort();
    wait_for(
        "node 1's takeover of node 3",
        Duration::from_secs(10),
        || k1.takeovers_of(3) == 1,
    )
    .await;
    let before = k1.leases();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Ten heartbeats meanwhile: renewed all along (behind the takeover, not once); a loaded
    // machine may delay some.
    let renewed = k1.leases() - before;
    assert!(renewed >= 3, "{renewed} renewals during the takeover");
}

#[tokio::test]
async fn two_nodes_fence_then_take_over() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(2);
    let dir = std::env::temp_dir().join(format!("permtcpd-fence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("fenced");
    let fence = format!(
        "fence_command = [\"/bin/sh\", \"-c\", \"echo {{node}} {{incarnation}} >> {}\"]",
        log.display()
    );
    let k1 = FakeKernel::new();
    let nodes = [
        start_with(1, &ports, k1.clone(), &fence),
        start_with(2, &ports, FakeKernel::new(), &fence),
    ];
    wait_for("both up", Duration::from_secs(5), || {
        nodes.iter().all(|n| {
            let s = n.handle.status();
            s.lease && s.declarations.len() == 2
        })
    })
    .await;
    nodes[1].task.abort();
    let dead = Duration::from_millis(INTERVAL_MS) * MISSED;
    wait_for("fence and takeover", dead + Duration::from_secs(1), || {
        k1.takeovers_of(2) == 1
    })
    .await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "2 1002\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(k1.takeovers_of(2), 1);
    let s = nodes[0].handle.status();
    assert!(s.lease, "the peer is fenced: the survivor renews");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// keepalived mode: node 1 owns VRRP instance VI_1. Its crash brings permtcpd's verdict but
/// no takeover: keepalived decides. When node 2's keepalived writes that node 2 is MASTER of
/// VI_1 to its notify FIFO, node 2 takes node 1 over without assuming the address
/// (keepalived holds it) and tells node 3, which takes over its share too and applies node
/// 2's directive. Lines about other states, unreadable lines and a second MASTER change
/// nothing more. Node 1's hold file (keepalived's track_file) is created 0; node 1 restarted
/// after the takeover is told by the peers that it was taken over, and its hold file reads 1.
#[tokio::test]
async fn keepalived_master_takes_over_and_tells_the_peers() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    let fifo = std::env::temp_dir().join(format!(
        "permtcpd-test-{}-{}.fifo",
        std::process::id(),
        ports[1]
    ));
    let _ = std::fs::remove_file(&fifo);
    let map = "[keepalived]\ninstances = { VI_1 = 1 }\n";
    let hold = fifo.with_extension("hold");
    let _ = std::fs::remove_file(&hold);
    let owner = format!(
        "[keepalived]\nhold_file = \"{}\"\ninstances = {{ VI_1 = 1 }}\n",
        hold.display()
    );
    let read_hold = || std::fs::read_to_string(&hold).unwrap_or_default();
    let k1 = FakeKernel::new();
    let k2 = FakeKernel::new().with_takeover_directives(vec![DirectiveInfo {
        key: conn(),
        next: 3,
    }]);
    let k3 = FakeKernel::new();
    let with_fifo = format!(
        "[keepalived]\nfifo = \"{}\"\ninstances = {{ VI_1 = 1 }}\n",
        fifo.display()
    );
    let nodes = [
        start_with(1, &ports, k1.clone(), &owner),
        start_with(2, &ports, k2.clone(), &with_fifo),
        start_with(3, &ports, k3.clone(), map),
    ];
    wait_for("declarations and quorum", Duration::from_secs(5), || {
        nodes.iter().all(|n| {
            let s = n.handle.status();
            s.quorum && s.declarations.len() == 3
        })
    })
    .await;
    wait_for("node 2's FIFO", Duration::from_secs(2), || fifo.exists()).await;
    wait_for("node 1's hold file created", Duration::from_secs(2), || {
        read_hold() == "0\n"
    })
    .await;

    nodes[0].task.abort();
    // Well past the verdict and the lease wait: node 1 is down, and nobody took it over.
    let dead = Duration::from_millis(INTERVAL_MS) * MISSED;
    tokio::time::sleep(dead * 3 + Duration::from_millis(400)).await;
    for (n, k) in [(&nodes[1], &k2), (&nodes[2], &k3)] {
        let s = n.handle.status();
        let v1 = s.view.iter().find(|e| e.node == 1).unwrap();
        assert_eq!(v1.state, NodeState::Down, "permtcpd's own verdict");
        assert_eq!(k.takeovers_of(1), 0, "keepalived decides node 1's takeover");
        assert!(s.takeovers.is_empty());
    }

    let write = |text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    write("INSTANCE \"VI_1\" BACKUP 100\nnot a keepalived line\nINSTANCE \"VI_9\" MASTER 100\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(k2.takeovers_of(1) + k3.takeovers_of(1), 0);
    write("INSTANCE \"VI_1\" MASTER 100\n");
    let t = wait_for("both takeovers", Duration::from_secs(2), || {
        k2.takeovers_of(1) == 1 && k3.takeovers_of(1) == 1
    })
    .await;
    eprintln!("keepalived's MASTER line -> both takeovers: {t:?}");
    for k in [&k2, &k3] {
        assert!(
            k.calls().contains(&Call::TakeoverKeepAddresses(1)),
            "no address assumption: keepalived holds it"
        );
        assert!(!k.calls().contains(&Call::Takeover(1)));
    }
    wait_for("node 2's directive applied by node 3", Duration::from_secs(2), || {
        k3.calls().iter().any(|c| matches!(c, Call::Directive(r) if r.node == 1 && r.key == conn() && r.from == Some(2)))
    })
    .await;
    write("INSTANCE \"VI_1\" MASTER 100\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (k2.takeovers_of(1), k3.takeovers_of(1)),
        (1, 1),
        "once per node"
    );
    for n in &nodes[1..] {
        assert_eq!(n.handle.status().takeovers, vec![1]);
    }

    // Node 1 comes back (a newer incarnation), its hold file still 0: the peers, hearing it,
    // tell it that they took it over, and it holds its instances down until its kernel has
    // installed both peers' recovery lists (slowly here: 1 s each), then releases them.
    let k1 = FakeKernel::new().with_recovery_delay(Duration::from_secs(1));
    let back = start_incarnation(1, &ports, k1.clone(), &owner, 2001);
    wait_for("node 1 held down", Duration::from_secs(5), || {
        read_hold() == "1\n"
    })
    .await;
    assert!(back.handle.status().recovered_from.len() < 2);
    wait_for("node 1 released", Duration::from_secs(8), || {
        read_hold() == "0\n"
    })
    .await;
    let s = back.handle.status();
    assert_eq!(
        s.recovered_from.len(),
        2,
        "released only once both lists are in"
    );
    // keepalived gives the address back: node 2's instance leaves MASTER, and node 2 holds
    // the address quietly for the connections it serves (hand-back), not before.
    assert!(!k2.calls().contains(&Call::HandBack(1)));
    write("INSTANCE \"VI_1\" BACKUP 100\n");
    wait_for("node 2's hand-back", Duration::from_secs(2), || {
        k2.calls().contains(&Call::HandBack(1))
    })
    .await;
    // Node 2 no longer holds the address and node 1 installed its list: node 1 rejoins in
    // node 2's kernel, after the hand-back; node 3 (never MASTER) rejoins once its list was
    // installed.
    // The daemon notes the rejoin in its status after its kernel call returned.
    wait_for("both rejoins", Duration::from_secs(2), || {
        k2.calls().contains(&Call::Rejoin(1))
            && k3.calls().contains(&Call::Rejoin(1))
            && nodes[1].handle.status().rejoined == vec![1]
    })
    .await;
    let c2 = k2.calls();
    let at = |c: &Call| c2.iter().position(|x| x == c).unwrap();
    assert!(at(&Call::HandBack(1)) < at(&Call::Rejoin(1)), "{c2:?}");
    assert_eq!(nodes[1].handle.status().rejoined, vec![1]);
    // keepalived moves the address to node 2 again: a new failure, taken over again by both.
    write("INSTANCE \"VI_1\" MASTER 100\n");
    wait_for("the second takeovers", Duration::from_secs(2), || {
        k2.takeovers_of(1) == 2 && k3.takeovers_of(1) == 2
    })
    .await;
    let _ = std::fs::remove_file(&fifo);
    let _ = std::fs::remove_file(&hold);
}

#[tokio::test]
async fn a_node_back_from_a_crash_learns_what_its_peers_serve_before_they_hand_back() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    let k1 = FakeKernel::new();
    let k2 = FakeKernel::new();
    let k3 = FakeKernel::new();
    let mut nodes: Vec<Node> = [(1, &k1), (2, &k2), (3, &k3)]
        .into_iter()
        .map(|(id, k)| start(id, &ports, k.clone()))
        .collect();
    let recoveries = |k: &FakeKernel| -> Vec<(u32, Vec<FlowKey>)> {
        let mut r: Vec<_> = k
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Recovery(n, s) => Some((n, s)),
                _ => None,
            })
            .collect();
        r.sort_by_key(|x| x.0);
        r
    };
    let hand_backs = |k: &FakeKernel| {
        k.calls()
            .iter()
            .filter(|c| **c == Call::HandBack(1))
            .count()
    };
    // At the start every node tells every other that it serves nothing of its; nothing is
    // handed back (nothing was taken over).
    wait_for("the empty lists at start", Duration::from_secs(5), || {
        recoveries(&k1) == vec![(2, vec![]), (3, vec![])]
    })
    .await;
    assert_eq!(hand_backs(&k2) + hand_backs(&k3), 0);

    // Node 1 crashes; both peers take it over; node 2 serves its connection.
    nodes[0].task.abort();
    wait_for("both takeovers", Duration::from_secs(3), || {
        k2.takeovers_of(1) == 1 && k3.takeovers_of(1) == 1
    })
    .await;
    let _ = k2.clone().with_served(vec![conn()]);

    // Node 1 comes back, a new incarnation, managing its addresses: it installs node 2's
    // list (one connection) and node 3's (none); only then does it take its addresses, and
    // do they hand them back.
    nodes[0] = start_incarnation(
        1,
        &ports,
        k1.clone(),
        "manage_addresses = true\n[snoop]\ndevice = \"lo\"",
        5000,
    );
    wait_for(
        "the lists of the new incarnation",
        Duration::from_secs(5),
        || recoveries(&k1).len() == 4,
    )
    .await;
    let r = recoveries(&k1);
    assert!(r.contains(&(2, vec![conn()])), "{r:?}");
    assert_eq!(r.iter().filter(|x| x.0 == 3).count(), 2, "{r:?}");
    wait_for("the hand-backs", Duration::from_secs(5), || {
        hand_backs(&k2) == 1 && hand_backs(&k3) == 1
    })
    .await;
    let s1 = nodes[0].handle.status();
    assert_eq!(s1.recovered_from.get(&2), Some(&1));
    assert_eq!(s1.recovered_from.get(&3), Some(&0));
    assert!(nodes[1].handle.status().recovery_acked.contains(&1));
    wait_for("node 1 takes its addresses", Duration::from_secs(5), || {
        nodes[0].handle.status().addresses_taken
    })
    .await;
    let calls = k1.calls();
    let at = |c: &Call| calls.iter().position(|x| x == c).unwrap();
    let own = at(&Call::OwnAddresses("lo".into()));
    assert!(own > at(&Call::Recovery(2, vec![conn()])), "{calls:?}");
    let last_3 = calls
        .iter()
        .rposition(|x| *x == Call::Recovery(3, vec![]))
        .unwrap();
    assert!(own > last_3, "{calls:?}");

    // Node 1 is a member again in both peers' kernels (after the hand-back on each), and a
    // second crash is taken over again.
    wait_for("the rejoins", Duration::from_secs(5), || {
        k2.calls().contains(&Call::Rejoin(1))
            && k3.calls().contains(&Call::Rejoin(1))
            && nodes[1..3]
                .iter()
                .all(|n| n.handle.status().rejoined == vec![1])
    })
    .await;
    for (k, n) in [(&k2, 1), (&k3, 2)] {
        let c = k.calls();
        let at = |x: &Call| c.iter().position(|y| y == x).unwrap();
        assert!(at(&Call::HandBack(1)) < at(&Call::Rejoin(1)), "{c:?}");
        assert_eq!(nodes[n].handle.status().rejoined, vec![1]);
    }
    nodes[0].task.abort();
    wait_for("the second takeovers", Duration::from_secs(5), || {
        k2.takeovers_of(1) == 2 && k3.takeovers_of(1) == 2
    })
    .await;
}

/// Held connection `i` of node 1's binding 10.0.0.1:80.
fn held(i: u16) -> HandoffConn {
    HandoffConn {
        key: FlowKey {
            owner_addr: Addr::v4([10, 0, 0, 1]),
            client_addr: Addr::v4([192, 0, 2, 9]),
            owner_port: 80,
            client_port: 40000 + i,
        },
        snd_nxt: 1000 + u32::from(i),
        snd_una: 1000 + u32::from(i),
        rcv_nxt: 7,
        status: hs::HELD,
    }
}

/// Asks node `n` for a handoff of `binding` to `to`; its JSON answer.
async fn handoff(n: &Node, binding: &str, to: u32) -> serde_json::Value {
    let (reply, rx) = tokio::sync::oneshot::channel();
    n.control
        .send(Control::Handoff {
            binding: binding.parse().unwrap(),
            to,
            reply,
        })
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("an answer in time")
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Nodes 1 and 2 (and 3 if asked) up, with quorum.
async fn pair(ports: &[u16], k1: &FakeKernel, k2: &FakeKernel, extra1: &str) -> (Node, Node) {
    let n1 = start_with(1, ports, k1.clone(), extra1);
    let n2 = start(2, ports, k2.clone());
    wait_for("quorum of two", Duration::from_secs(5), || {
        [&n1, &n2].iter().all(|n| {
            let s = n.handle.status();
            s.quorum && s.declarations.len() == 2
        })
    })
    .await;
    (n1, n2)
}

fn calls_done(k: &FakeKernel) -> Vec<Call> {
    k.calls()
        .into_iter()
        .filter(|c| matches!(c, Call::HandoffDone(..) | Call::HandoffAbort(..)))
        .collect()
}

#[tokio::test]
async fn a_handoff_in_parts_is_taken_once_and_done() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    // 300 held connections (three parts), one busy (not held, not sent).
    let mut conns: Vec<HandoffConn> = (0..300).map(held).collect();
    conns.push(HandoffConn {
        status: hs::BUSY,
        ..held(999)
    });
    let k1 = FakeKernel::new().with_held(conns.clone());
    // Node 2's kernel takes its time: node 1 sends every part again meanwhile (every 100
    // ms), and node 2 must not take any of them twice.
    let k2 = FakeKernel::new().with_take(hs::TAKEN, Duration::from_millis(250));
    let (n1, n2) = pair(&ports, &k1, &k2, "").await;
    let j = handoff(&n1, "10.0.0.1:80", 2).await;
    assert_eq!(j["held"], 300, "{j}");
    assert_eq!(
        (j["busy"].as_u64(), j["taken"].as_u64()),
        (Some(1), Some(300))
    );
    assert_eq!(
        (j["aborted"].as_u64(), j["end"].as_str()),
        (Some(0), Some("answered"))
    );
    assert!(j["times_us"]["take"].as_u64().unwrap() >= 250_000, "{j}");
    let takes = k2.takes();
    assert_eq!(takes.len(), 3, "each part taken once");
    let mut all: Vec<u16> = takes.iter().flatten().map(|c| c.key.client_port).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 300);
    match &calls_done(&k1)[..] {
        [Call::HandoffDone(2, d)] => {
            assert_eq!(d.len(), 300);
            assert!(d.iter().all(|c| c.status == hs::TAKEN));
        }
        other => panic!("{other:?}"),
    }
    // Retransmissions arrived, were answered again, and took nothing more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(k2.takes().len(), 3);
    assert_eq!(n2.handle.status().handoff_parts, 3);
    assert_eq!(n1.handle.status().handoffs, 1);
    assert!(!n1.handle.status().handoff_running);
}

#[tokio::test]
async fn refused_connections_resume_and_unanswered_ones_are_aborted() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    let conns: Vec<HandoffConn> = (0..5).map(held).collect();
    // Refused: DONE with the refusals, so that node 1 resumes them.
    let k1 = FakeKernel::new().with_held(conns.clone());
    let k2 = FakeKernel::new().with_take(hs::NOT_MIRRORED, Duration::ZERO);
    let (n1, _n2) = pair(&ports, &k1, &k2, "handoff_timeout_ms = 600").await;
    let j = handoff(&n1, "10.0.0.1:80", 2).await;
    assert_eq!(j["refused"]["not-mirrored"], 5, "{j}");
    assert_eq!(j["taken"], 0);
    match &calls_done(&k1)[..] {
        [Call::HandoffDone(2, d)] => assert!(d.iter().all(|c| c.status == hs::NOT_MIRRORED)),
        other => panic!("{other:?}"),
    }
    // An answer that says "not known" (held): never resumed, aborted.
    let ports = free_ports(3);
    let k1 = FakeKernel::new().with_held(conns.clone());
    let k2 = FakeKernel::new().with_take(hs::HELD, Duration::ZERO);
    let (n1, _n2) = pair(&ports, &k1, &k2, "handoff_timeout_ms = 600").await;
    let j = handoff(&n1, "10.0.0.1:80", 2).await;
    assert_eq!(
        (j["aborted"].as_u64(), j["taken"].as_u64()),
        (Some(5), Some(0)),
        "{j}"
    );
    match &calls_done(&k1)[..] {
        [Call::HandoffAbort(2, a)] => assert_eq!(a.len(), 5),
        other => panic!("{other:?}"),
    }
    // No answer in time: aborted at the timeout, never resumed.
    let ports = free_ports(3);
    let k1 = FakeKernel::new().with_held(conns.clone());
    let k2 = FakeKernel::new().with_take(hs::TAKEN, Duration::from_millis(2000));
    let (n1, _n2) = pair(&ports, &k1, &k2, "handoff_timeout_ms = 600").await;
    let j = handoff(&n1, "10.0.0.1:80", 2).await;
    assert_eq!(
        (j["aborted"].as_u64(), j["end"].as_str()),
        (Some(5), Some("timeout")),
        "{j}"
    );
    match &calls_done(&k1)[..] {
        [Call::HandoffAbort(2, a)] => assert_eq!(a.len(), 5),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_peer_declared_down_gets_its_handoff_aborted() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    let conns: Vec<HandoffConn> = (0..3).map(held).collect();
    let k1 = FakeKernel::new().with_held(conns.clone());
    // Node 2 never answers in time; node 3 keeps quorum with node 1.
    let k2 = FakeKernel::new().with_take(hs::TAKEN, Duration::from_secs(30));
    let n1 = start_with(1, &ports, k1.clone(), "handoff_timeout_ms = 50000");
    let n2 = start(2, &ports, k2.clone());
    let _n3 = start(3, &ports, FakeKernel::new());
    wait_for("quorum of three", Duration::from_secs(5), || {
        n1.handle.status().declarations.len() == 3 && n1.handle.status().quorum
    })
    .await;
    let ask = handoff(&n1, "10.0.0.1:80", 2);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        n2.task.abort();
    };
    let (j, ()) = tokio::join!(ask, kill);
    assert_eq!(
        (j["aborted"].as_u64(), j["end"].as_str()),
        (Some(3), Some("peer down")),
        "{j}"
    );
    assert!(matches!(&calls_done(&k1)[..], [Call::HandoffAbort(2, a)] if a.len() == 3));
}

#[tokio::test]
async fn handoff_requests_are_checked_and_the_control_socket_answers() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    let k1 = FakeKernel::new().with_held((0..2).map(held).collect());
    let k2 = FakeKernel::new();
    let (n1, _n2) = pair(&ports, &k1, &k2, "").await;
    for (binding, to, want) in [
        ("10.0.0.1:80", 9, "unknown node"),
        ("10.0.0.1:80", 1, "unknown node"),
        (
            "10.0.0.9:80",
            2,
            "not one of this node's bindings (nor a peer's)",
        ),
        ("10.0.0.1:81", 2, "not one of this node's bindings"),
        ("10.0.0.1:80", 3, "not live"),
    ] {
        let j = handoff(&n1, binding, to).await;
        let e = j["error"].as_str().unwrap_or_default();
        assert!(e.contains(want), "{binding} to {to}: {j}");
    }
    assert!(k1
        .calls()
        .iter()
        .all(|c| !matches!(c, Call::HandoffHold(_))));
    // The same request through the control socket, as `permtcpd --handoff` sends it.
    let path = format!("{}.ctl", status_socket(1, &ports).display());
    let text = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut c = std::os::unix::net::UnixStream::connect(path).unwrap();
        c.write_all(b"{\"handoff\":\"10.0.0.1:80\",\"to\":2}\n")
            .unwrap();
        let mut t = String::new();
        c.read_to_string(&mut t).unwrap();
        t
    })
    .await
    .unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (j["held"].as_u64(), j["taken"].as_u64()),
        (Some(2), Some(2)),
        "{text}"
    );
    assert_eq!(k2.takes().len(), 1);
}

#[tokio::test]
async fn a_node_left_failed_in_the_kernel_by_an_earlier_run_rejoins_once_back() {
    permtcpd::log::set_level(permtcpd::log::ERR);
    let ports = free_ports(3);
    // Node 2's kernel still holds node 1 failed: its daemon took node 1 over, then
    // restarted. Node 1 is back: once it installed node 2's list, node 2 rejoins it; node 3,
    // whose kernel never declared it failed, does not.
    let k1 = FakeKernel::new();
    let k2 = FakeKernel::new().with_failed(vec![1]);
    let k3 = FakeKernel::new();
    let nodes: Vec<Node> = [(1, &k1), (2, &k2), (3, &k3)]
        .into_iter()
        .map(|(id, k)| start(id, &ports, k.clone()))
        .collect();
    wait_for("node 2 rejoins node 1", Duration::from_secs(5), || {
        k2.calls().contains(&Call::Rejoin(1)) && nodes[1].handle.status().rejoined == vec![1]
    })
    .await;
    assert!(nodes[0].handle.status().recovered_from.contains_key(&2));
    assert_eq!(nodes[1].handle.status().rejoined, vec![1]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!k3.calls().iter().any(|c| matches!(c, Call::Rejoin(_))));
    assert!(!k2
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Rejoin(n) if *n != 1)));
}
