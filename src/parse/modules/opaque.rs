//! Real iptables extensions that fwverify keeps without modelling them: their names and,
//! where known, their option tables, so that their options are still checked and bound
//! the way iptables binds them. Anything without a table takes every unclaimed option.

use super::{o, Arg, Cx, MatchParser, OptDef, TargetParser, Val};
use crate::diag::Diagnostic;
use crate::model::matches::Opaque;
use crate::model::{Family, Match, Target};

type Schema = Option<&'static [OptDef]>;

use Arg::{None as N, Optional as P, Required as R, Two as T};

/// Match extensions of iptables 1.8 (and common xtables-addons), with option tables.
const MATCHES: &[(&str, Schema)] = &[
    ("addrtype", None),
    ("ah", Some(&[o("ahspi", R, true), o("ahlen", R, true), o("ahres", N, false)])),
    ("bpf", Some(&[o("bytecode", R, false), o("object-pinned", R, false)])),
    ("cgroup", Some(&[o("cgroup", R, true), o("path", R, true)])),
    ("cluster", None),
    ("comment", None),
    ("connbytes", Some(&[o("connbytes", R, true), o("connbytes-dir", R, false), o("connbytes-mode", R, false)])),
    ("connlabel", Some(&[o("label", R, true), o("set", N, false)])),
    ("connlimit", None),
    ("connmark", None),
    ("conntrack", None),
    ("cpu", Some(&[o("cpu", R, true)])),
    (
        "dccp",
        Some(&[
            o("source-port", R, true),
            o("sport", R, true),
            o("destination-port", R, true),
            o("dport", R, true),
            o("dccp-types", R, true),
            o("dccp-option", R, true),
        ]),
    ),
    ("devgroup", Some(&[o("src-group", R, true), o("dst-group", R, true)])),
    ("dscp", Some(&[o("dscp", R, true), o("dscp-class", R, true)])),
    ("dst", None),
    ("ecn", Some(&[o("ecn-tcp-cwr", N, true), o("ecn-tcp-ece", N, true), o("ecn-ip-ect", R, true)])),
    ("esp", Some(&[o("espspi", R, true)])),
    ("eui64", Some(&[])),
    (
        "frag",
        Some(&[
            o("fragid", R, true),
            o("fraglen", R, true),
            o("fragres", N, false),
            o("fragfirst", N, false),
            o("fragmore", N, false),
            o("fraglast", N, false),
        ]),
    ),
    (
        "geoip",
        Some(&[
            o("src-cc", R, true),
            o("source-country", R, true),
            o("dst-cc", R, true),
            o("destination-country", R, true),
        ]),
    ),
    ("hashlimit", None),
    ("hbh", None),
    ("helper", Some(&[o("helper", R, true)])),
    ("hl", None),
    ("icmp6", None),
    ("iprange", None),
    ("ipv6header", Some(&[o("header", R, true), o("soft", N, false)])),
    ("ipvs", None),
    ("length", None),
    ("mac", None),
    ("mark", None),
    ("mh", Some(&[o("mh-type", R, true)])),
    ("nfacct", Some(&[o("nfacct-name", R, false)])),
    ("osf", None),
    ("owner", None),
    ("physdev", None),
    ("pkttype", None),
    (
        "policy",
        Some(&[
            o("dir", R, false),
            o("pol", R, false),
            o("strict", N, false),
            o("reqid", R, true),
            o("spi", R, true),
            o("proto", R, true),
            o("mode", R, true),
            o("tunnel-src", R, true),
            o("tunnel-dst", R, true),
            o("next", N, false),
        ]),
    ),
    ("quota", Some(&[o("quota", R, true)])),
    ("rateest", None),
    ("realm", Some(&[o("realm", R, true)])),
    (
        "rpfilter",
        Some(&[o("loose", N, false), o("validmark", N, false), o("accept-local", N, false), o("invert", N, false)]),
    ),
    (
        "rt",
        Some(&[
            o("rt-type", R, true),
            o("rt-segsleft", R, true),
            o("rt-len", R, true),
            o("rt-0-res", N, false),
            o("rt-0-addrs", R, false),
            o("rt-0-not-strict", N, false),
        ]),
    ),
    (
        "sctp",
        Some(&[
            o("source-port", R, true),
            o("sport", R, true),
            o("destination-port", R, true),
            o("dport", R, true),
            o("chunk-types", T, true),
        ]),
    ),
    ("set", None),
    ("socket", Some(&[o("transparent", N, false), o("nowildcard", N, false), o("restore-skmark", N, false)])),
    ("srh", None),
    ("state", None),
    ("statistic", None),
    (
        "string",
        Some(&[
            o("from", R, false),
            o("to", R, false),
            o("algo", R, false),
            o("string", R, true),
            o("hex-string", R, true),
            o("icase", N, false),
        ]),
    ),
    ("tcpmss", None),
    (
        "time",
        Some(&[
            o("datestart", R, false),
            o("datestop", R, false),
            o("timestart", R, false),
            o("timestop", R, false),
            o("monthdays", R, true),
            o("weekdays", R, true),
            o("localtz", N, false),
            o("utc", N, false),
            o("kerneltz", N, false),
            o("contiguous", N, false),
        ]),
    ),
    ("tos", Some(&[o("tos", R, true)])),
    ("ttl", None),
    ("u32", Some(&[o("u32", R, true)])),
    ("udplite", None),
];

/// Target extensions, with option tables.
const TARGETS: &[(&str, Schema)] = &[
    ("AUDIT", Some(&[o("type", R, false)])),
    ("CHECKSUM", Some(&[o("checksum-fill", N, false)])),
    ("CLASSIFY", Some(&[o("set-class", R, false)])),
    ("CLUSTERIP", None),
    ("CONNMARK", None),
    ("CONNSECMARK", Some(&[o("save", N, false), o("restore", N, false)])),
    ("CT", None),
    ("DNAT", None),
    ("DSCP", Some(&[o("set-dscp", R, false), o("set-dscp-class", R, false)])),
    ("ECN", Some(&[o("ecn-tcp-remove", N, false)])),
    ("HL", Some(&[o("hl-set", R, false), o("hl-dec", R, false), o("hl-inc", R, false)])),
    ("HMARK", None),
    ("IDLETIMER", Some(&[o("timeout", R, false), o("label", R, false), o("alarm", N, false)])),
    ("LED", None),
    ("MASQUERADE", None),
    ("MARK", None),
    ("NETMAP", Some(&[o("to", R, false)])),
    ("NFLOG", None),
    (
        "NFQUEUE",
        Some(&[
            o("queue-num", R, false),
            o("queue-balance", R, false),
            o("queue-bypass", N, false),
            o("fail-open", N, false),
            o("queue-cpu-fanout", N, false),
        ]),
    ),
    ("NOTRACK", Some(&[])),
    ("RATEEST", None),
    ("REDIRECT", None),
    ("SECMARK", Some(&[o("selctx", R, false)])),
    (
        "SET",
        Some(&[
            o("add-set", T, false),
            o("del-set", T, false),
            o("map-set", T, false),
            o("timeout", R, false),
            o("exist", N, false),
        ]),
    ),
    ("SNAT", None),
    (
        "SYNPROXY",
        Some(&[
            o("sack-perm", N, false),
            o("timestamp", N, false),
            o("wscale", R, false),
            o("mss", R, false),
            o("ecn", N, false),
        ]),
    ),
    ("TCPMSS", None),
    ("TCPOPTSTRIP", Some(&[o("strip-options", R, false)])),
    ("TEE", Some(&[o("gateway", R, false)])),
    ("TOS", Some(&[o("set-tos", R, false), o("and-tos", R, false), o("or-tos", R, false), o("xor-tos", R, false)])),
    ("TPROXY", Some(&[o("on-port", R, false), o("on-ip", R, false), o("tproxy-mark", R, false)])),
    ("TRACE", Some(&[])),
    ("TTL", Some(&[o("ttl-set", R, false), o("ttl-dec", R, false), o("ttl-inc", R, false)])),
    (
        "ULOG",
        Some(&[
            o("ulog-nlgroup", R, false),
            o("ulog-prefix", R, false),
            o("ulog-cprange", R, false),
            o("ulog-qthreshold", R, false),
        ]),
    ),
];

const _: Arg = P;

/// Every match name fwverify knows (modelled or not).
pub(crate) fn known_match_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = MATCHES.iter().map(|(n, _)| *n).collect();
    v.extend(["tcp", "udp", "icmp", "multiport", "recent", "limit"]);
    v.sort_unstable();
    v.dedup();
    v
}

/// Every target name fwverify knows.
pub(crate) fn known_target_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = TARGETS.iter().map(|(n, _)| *n).collect();
    v.extend(["ACCEPT", "DROP", "RETURN", "QUEUE", "REJECT", "LOG"]);
    v
}

/// The modelled or schema'd module that has an option called exactly `name`.
pub(crate) fn module_with_option(name: &str) -> Option<&'static str> {
    // Most used modules first: `--set` is recent's before it is connlabel's.
    const FIRST: &[&str] =
        &["recent", "tcp", "udp", "icmp", "icmp6", "multiport", "state", "conntrack", "limit", "comment", "mark"];
    let rest = known_match_names();
    for m in FIRST.iter().copied().chain(rest.into_iter().filter(|m| !FIRST.contains(m))) {
        for fam in [Family::V4, Family::V6] {
            if let Some(p) = super::match_parser(m, fam) {
                if p.opts().iter().any(|o| o.name == name) {
                    return Some(m);
                }
            }
        }
    }
    match name {
        "icmpv6-type" => Some("icmp6"),
        "ctstate" | "ctstatus" | "ctproto" | "ctorigsrc" | "ctorigdst" | "ctdir" | "ctexpire" => Some("conntrack"),
        "mac-source" => Some("mac"),
        "match-set" => Some("set"),
        "uid-owner" | "gid-owner" | "socket-exists" => Some("owner"),
        "src-type" | "dst-type" => Some("addrtype"),
        "src-range" | "dst-range" => Some("iprange"),
        "mark" => Some("mark"),
        "pkt-type" => Some("pkttype"),
        "hashlimit" | "hashlimit-upto" | "hashlimit-above" | "hashlimit-name" => Some("hashlimit"),
        "connlimit-above" | "connlimit-upto" => Some("connlimit"),
        "ttl-eq" | "ttl-gt" | "ttl-lt" => Some("ttl"),
        "physdev-in" | "physdev-out" => Some("physdev"),
        _ => None,
    }
}

pub(super) fn match_parser(name: &str) -> Option<Box<dyn MatchParser>> {
    let (n, schema) = MATCHES.iter().find(|(n, _)| *n == name)?;
    Some(Box::new(OpaqueP { name: n, schema: *schema, args: Vec::new() }))
}

pub(super) fn target_parser(name: &str) -> Option<Box<dyn TargetParser>> {
    let (n, schema) = TARGETS.iter().find(|(n, _)| *n == name)?;
    Some(Box::new(OpaqueP { name: n, schema: *schema, args: Vec::new() }))
}

struct OpaqueP {
    name: &'static str,
    schema: Schema,
    args: Vec<String>,
}

impl OpaqueP {
    fn push(&mut self, name: &str, inv: bool, val: Option<Val>) {
        if inv {
            self.args.push("!".into());
        }
        self.args.push(format!("--{name}"));
        if let Some(v) = val {
            // Two-word options arrive joined by one space.
            let two = self.schema.and_then(|s| s.iter().find(|o| o.name == name)).map(|o| o.arg == Arg::Two);
            if two == Some(true) {
                self.args.extend(v.text.splitn(2, ' ').map(str::to_string));
            } else {
                self.args.push(v.text);
            }
        }
    }
}

impl MatchParser for OpaqueP {
    fn name(&self) -> &str {
        self.name
    }
    fn opts(&self) -> &'static [OptDef] {
        self.schema.unwrap_or(&[])
    }
    fn schemaless(&self) -> bool {
        self.schema.is_none()
    }
    fn is_opaque(&self) -> bool {
        true
    }
    fn take(&mut self, _: usize, name: &str, inv: bool, val: Option<Val>, _: &mut Cx) -> Result<(), Diagnostic> {
        self.push(name, inv, val);
        Ok(())
    }
    fn finish(self: Box<Self>, _: &mut Cx) -> Result<Match, Diagnostic> {
        Ok(Match::Opaque(Opaque { module: self.name.to_string(), args: self.args }))
    }
}

impl TargetParser for OpaqueP {
    fn name(&self) -> &str {
        self.name
    }
    fn opts(&self) -> &'static [OptDef] {
        self.schema.unwrap_or(&[])
    }
    fn schemaless(&self) -> bool {
        self.schema.is_none()
    }
    fn is_opaque(&self) -> bool {
        true
    }
    fn take(&mut self, _: usize, name: &str, inv: bool, val: Option<Val>, _: &mut Cx) -> Result<(), Diagnostic> {
        self.push(name, inv, val);
        Ok(())
    }
    fn finish(self: Box<Self>, _: &mut Cx) -> Result<Target, Diagnostic> {
        Ok(Target::Opaque(Opaque { module: self.name.to_string(), args: self.args }))
    }
}
