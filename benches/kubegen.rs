//! A deterministic generator of kube-proxy-like `iptables-save` files (iptables mode,
//! legacy backend): a `filter` and a `nat` table with `KUBE-SERVICES`, one `KUBE-SVC-*`
//! chain per service, one `KUBE-SEP-*` chain per endpoint and one `KUBE-FW-*` chain per
//! load balancer, written chain by chain in the shape iptables-save prints.
//!
//! The files use what kube-proxy's rules use: `-m comment --comment "ns/svc:port cluster IP"`,
//! `-m statistic --mode random --probability 0.33333333349`, `-m mark --mark 0x4000/0x4000`,
//! `-j MARK --set-xmark 0x4000/0x4000`, `-m conntrack --ctstate`, `-m addrtype --dst-type LOCAL`,
//! DNAT `--to-destination`, `-m multiport --dports`, jumps and `REJECT`. Every file is
//! accepted by `iptables-legacy-restore` (the bench checks it).

use std::fmt::Write as _;

/// A generated file.
pub struct Generated {
    /// The `iptables-save` text.
    pub text: String,
    /// Number of rule lines (`-A …`); exactly the number asked for.
    pub rules: usize,
    /// Number of chains, built-in ones included.
    pub chains: usize,
    /// Number of services.
    pub services: usize,
}

/// The smallest rule count [`kube_proxy`] can produce (the fixed rules).
pub const MIN_RULES: usize = 32;

/// splitmix64: a fixed-seed generator, and (its finaliser) a bijection on `u64`, which
/// makes chain-name hashes unique by construction.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `PREFIX` + 16 base32 characters, like kube-proxy's `servicePortChainName`. The first 13
/// characters encode `mix(key)` (64 bits), so distinct keys give distinct names.
fn chain_name(prefix: &str, key: u64) -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let h = mix(key);
    let h2 = mix(key ^ 0x5555_5555_5555_5555);
    let mut s = String::with_capacity(prefix.len() + 16);
    s.push_str(prefix);
    for i in 0..13 {
        s.push(B32[((h >> (i * 5)) & 31) as usize] as char);
    }
    for i in 0..3 {
        s.push(B32[((h2 >> (i * 5)) & 31) as usize] as char);
    }
    s
}

fn ipv4(base: u32, offset: u32) -> String {
    let a = base.wrapping_add(offset);
    format!("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
}

/// How iptables-save prints a statistic probability: the kernel keeps
/// `lround(p * 2^31)` and the save prints it back with `%.11f` (libxt_statistic.c).
fn probability(p: f64) -> String {
    let stored = (p * 2_147_483_648.0).round();
    format!("{:.11}", stored / 2_147_483_648.0)
}

/// Rules of one table, grouped by chain in declaration order (built-ins first).
struct TableText {
    name: &'static str,
    chains: Vec<(String, Option<&'static str>, String)>,
    rules: usize,
}

impl TableText {
    fn new(name: &'static str, builtins: &[&str]) -> TableText {
        TableText {
            name,
            chains: builtins.iter().map(|b| (b.to_string(), Some("ACCEPT"), String::new())).collect(),
            rules: 0,
        }
    }
    /// Declares a user chain and returns its index.
    fn chain(&mut self, name: String) -> usize {
        self.chains.push((name, None, String::new()));
        self.chains.len() - 1
    }
    fn index(&self, name: &str) -> usize {
        self.chains.iter().position(|c| c.0 == name).expect("fixed chain declared")
    }
    /// Appends `-A CHAIN rest`.
    fn rule(&mut self, chain: usize, rest: &str) {
        let (name, _, buf) = &mut self.chains[chain];
        let _ = writeln!(buf, "-A {name} {rest}");
        self.rules += 1;
    }
    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "*{}", self.name);
        for (name, policy, _) in &self.chains {
            let _ = writeln!(out, ":{name} {} [0:0]", policy.unwrap_or("-"));
        }
        for (_, _, buf) in &self.chains {
            out.push_str(buf);
        }
        out.push_str("COMMIT\n");
    }
}

const PORTS: &[(&str, &str, u16, u16)] = &[
    ("http", "tcp", 80, 8080),
    ("https", "tcp", 443, 8443),
    ("dns", "udp", 53, 53),
    ("dns-tcp", "tcp", 53, 53),
    ("metrics", "tcp", 9090, 9090),
    ("redis", "tcp", 6379, 6379),
    ("postgres", "tcp", 5432, 5432),
    ("grpc", "tcp", 50051, 50051),
];

/// Generates a kube-proxy-like ruleset with exactly `rules` rules (at least [`MIN_RULES`]).
/// The same `rules` always gives the same text.
pub fn kube_proxy(rules: usize) -> Generated {
    assert!(rules >= MIN_RULES, "at least {MIN_RULES} rules");
    let mut rng = Rng(0x6677_7665_7269_6679);
    let mut filter = TableText::new("filter", &["INPUT", "FORWARD", "OUTPUT"]);
    let mut nat = TableText::new("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]);

    // Fixed chains and rules, as kube-proxy writes them.
    for c in [
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FIREWALL",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SERVICES",
    ] {
        filter.chain(c.to_string());
    }
    let (f_input, f_forward, f_output) = (0, 1, 2);
    let f_ext = filter.index("KUBE-EXTERNAL-SERVICES");
    let f_fw = filter.index("KUBE-FIREWALL");
    let f_fwd = filter.index("KUBE-FORWARD");
    let f_np = filter.index("KUBE-NODEPORTS");
    let f_pfw = filter.index("KUBE-PROXY-FIREWALL");
    let f_svc = filter.index("KUBE-SERVICES");
    for chain in [f_input, f_forward, f_output] {
        filter.rule(
            chain,
            "-m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
        );
    }
    filter.rule(f_input, "-m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS");
    filter.rule(
        f_input,
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
    );
    filter.rule(f_input, "-j KUBE-FIREWALL");
    filter.rule(f_forward, "-m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD");
    filter.rule(
        f_forward,
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    );
    filter.rule(
        f_forward,
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
    );
    filter.rule(
        f_output,
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    );
    filter.rule(f_output, "-j KUBE-FIREWALL");
    filter.rule(
        f_fw,
        "! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    );
    filter.rule(
        f_fw,
        "-m comment --comment \"kubernetes firewall for dropping marked packets\" -m mark --mark 0x8000/0x8000 -j DROP",
    );
    filter.rule(f_fwd, "-m conntrack --ctstate INVALID -j DROP");
    filter.rule(f_fwd, "-m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT");
    filter.rule(
        f_fwd,
        "-m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    );
    filter.rule(f_ext, "-p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp has no endpoints\" -m addrtype --dst-type LOCAL -m tcp --dport 30053 -j REJECT --reject-with icmp-port-unreachable");
    filter.rule(f_np, "-p tcp -m comment --comment \"kube-system/health:probe health check node port\" -m tcp --dport 30256 -j ACCEPT");

    for c in ["KUBE-MARK-DROP", "KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-SERVICES"] {
        nat.chain(c.to_string());
    }
    let (n_pre, n_output, n_post) = (0, 2, 3);
    let n_drop = nat.index("KUBE-MARK-DROP");
    let n_masq = nat.index("KUBE-MARK-MASQ");
    let n_np = nat.index("KUBE-NODEPORTS");
    let n_post_k = nat.index("KUBE-POSTROUTING");
    let n_svc = nat.index("KUBE-SERVICES");
    nat.rule(n_pre, "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
    nat.rule(n_output, "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
    nat.rule(n_post, "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING");
    nat.rule(n_drop, "-j MARK --set-xmark 0x8000/0x8000");
    nat.rule(n_masq, "-j MARK --set-xmark 0x4000/0x4000");
    nat.rule(n_post_k, "-m mark ! --mark 0x4000/0x4000 -j RETURN");
    nat.rule(n_post_k, "-j MARK --set-xmark 0x4000/0x0");
    nat.rule(
        n_post_k,
        "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
    );
    // The nodeport rule must stay last in KUBE-SERVICES: written at the end.
    let fixed_tail = 1;
    debug_assert!(filter.rules + nat.rules + fixed_tail <= MIN_RULES);

    const CLUSTER_NET: u32 = 10 << 24 | 96 << 16; // 10.96.0.0/12
    const POD_NET: u32 = 10 << 24 | 128 << 16; // 10.128.0.0/9
    const LB_NET: u32 = 198 << 24 | 18 << 16; // 198.18.0.0/15
    let mut services = 0usize;
    let mut endpoints = 0u32;
    let mut lbs = 0u32;
    loop {
        let endpoints_n = 1 + rng.below(4) as usize;
        let kind = rng.below(10); // 0..7 ClusterIP, 7..9 NodePort, 9 LoadBalancer
        let nodeport = kind >= 7;
        let lb = kind == 9;
        let cost = 2 + 3 * endpoints_n + if nodeport { 2 } else { 0 } + if lb { 5 } else { 0 };
        let left = rules - filter.rules - nat.rules - fixed_tail;
        if cost > left {
            break;
        }
        let k = services as u32;
        services += 1;
        let (port_name, proto, port, target_port) = PORTS[rng.below(PORTS.len() as u64) as usize];
        let ns = format!("ns-{}", rng.below(300));
        let svc_name = format!("{ns}/svc-{k}:{port_name}");
        let cluster_ip = ipv4(CLUSTER_NET, k + 10);
        let svc_chain = chain_name("KUBE-SVC-", u64::from(k) << 2);
        let svc = nat.chain(svc_chain.clone());
        nat.rule(
            n_svc,
            &format!(
                "-d {cluster_ip}/32 -p {proto} -m comment --comment \"{svc_name} cluster IP\" -m {proto} --dport {port} -j {svc_chain}"
            ),
        );
        nat.rule(
            svc,
            &format!(
                "! -s 10.128.0.0/9 -d {cluster_ip}/32 -p {proto} -m comment --comment \"{svc_name} cluster IP\" -m {proto} --dport {port} -j KUBE-MARK-MASQ"
            ),
        );
        for i in 0..endpoints_n {
            let pod = ipv4(POD_NET, endpoints);
            let sep_chain = chain_name("KUBE-SEP-", u64::from(endpoints) << 2 | 1);
            endpoints += 1;
            let sep = nat.chain(sep_chain.clone());
            if i + 1 < endpoints_n {
                let p = probability(1.0 / (endpoints_n - i) as f64);
                nat.rule(
                    svc,
                    &format!("-m comment --comment \"{svc_name} -> {pod}:{target_port}\" -m statistic --mode random --probability {p} -j {sep_chain}"),
                );
            } else {
                nat.rule(svc, &format!("-m comment --comment \"{svc_name} -> {pod}:{target_port}\" -j {sep_chain}"));
            }
            nat.rule(sep, &format!("-s {pod}/32 -m comment --comment \"{svc_name}\" -j KUBE-MARK-MASQ"));
            nat.rule(
                sep,
                &format!("-p {proto} -m comment --comment \"{svc_name}\" -m {proto} -j DNAT --to-destination {pod}:{target_port}"),
            );
        }
        if nodeport {
            let np = 30000 + (k % 2768);
            nat.rule(
                n_np,
                &format!("-p {proto} -m comment --comment \"{svc_name}\" -m {proto} --dport {np} -j KUBE-MARK-MASQ"),
            );
            nat.rule(
                n_np,
                &format!("-p {proto} -m comment --comment \"{svc_name}\" -m {proto} --dport {np} -j {svc_chain}"),
            );
        }
        if lb {
            let lb_ip = ipv4(LB_NET, lbs);
            let range = ipv4(203 << 24 | (lbs & 0xffff) << 8, 0);
            lbs += 1;
            let fw_chain = chain_name("KUBE-FW-", u64::from(k) << 2 | 2);
            let fw = nat.chain(fw_chain.clone());
            nat.rule(
                n_svc,
                &format!("-d {lb_ip}/32 -p {proto} -m comment --comment \"{svc_name} loadbalancer IP\" -m {proto} --dport {port} -j {fw_chain}"),
            );
            nat.rule(
                fw,
                &format!("-s {range}/24 -m comment --comment \"{svc_name} loadbalancer IP\" -j KUBE-MARK-MASQ"),
            );
            nat.rule(fw, &format!("-s {range}/24 -m comment --comment \"{svc_name} loadbalancer IP\" -j {svc_chain}"));
            nat.rule(fw, &format!("-m comment --comment \"{svc_name} loadbalancer IP\" -j KUBE-MARK-DROP"));
            filter.rule(
                f_pfw,
                &format!("-d {lb_ip}/32 ! -s {range}/24 -p {proto} -m comment --comment \"{svc_name} traffic not accepted by {fw_chain}\" -m multiport --dports {port},{target_port},{} -j DROP", 30000 + (k % 2768)),
            );
        }
    }
    // Services without endpoints fill the rest, one REJECT rule each.
    while filter.rules + nat.rules + fixed_tail < rules {
        let k = services as u32;
        services += 1;
        let (port_name, proto, port, _) = PORTS[rng.below(PORTS.len() as u64) as usize];
        let ip = ipv4(CLUSTER_NET, k + 10);
        filter.rule(
            f_svc,
            &format!("-d {ip}/32 -p {proto} -m comment --comment \"ns-{}/svc-{k}:{port_name} has no endpoints\" -m {proto} --dport {port} -j REJECT --reject-with icmp-port-unreachable", rng.below(300)),
        );
    }
    nat.rule(
        n_svc,
        "-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
    );
    let mut text = String::with_capacity(rules * 160);
    text.push_str("# Generated by iptables-save v1.8.9 on Thu Jan  1 00:00:00 2026\n");
    filter.write(&mut text);
    text.push_str(
        "# Completed on Thu Jan  1 00:00:00 2026\n# Generated by iptables-save v1.8.9 on Thu Jan  1 00:00:00 2026\n",
    );
    nat.write(&mut text);
    text.push_str("# Completed on Thu Jan  1 00:00:00 2026\n");
    let total = filter.rules + nat.rules;
    assert_eq!(total, rules);
    Generated { text, rules: total, chains: filter.chains.len() + nat.chains.len(), services }
}
