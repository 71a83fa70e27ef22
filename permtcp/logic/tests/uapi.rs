// SPDX-License-Identifier: GPL-2.0

//! The family's three descriptions must agree, name for name and value for value: the C UAPI
//! header, the Rust constants (uapi.rs) and the YAML netlink spec
//! (Documentation/netlink/specs/permtcp.yaml).
//!
//! The header and uapi.rs are read as text: every `pub const` of a module of uapi.rs maps to
//! the C name `PREFIX` + its name, and every enumerator of the header with a known prefix
//! must exist in uapi.rs with the same value.  The spec is read as YAML and numbered the way
//! the kernel's YNL tools number it (commands and attributes from 1 unless given a value,
//! enums from `value-start`); its C names are `name-prefix` + the entry's name in upper case.

use std::collections::BTreeMap;

use serde_yaml::Value;

const PREFIXES: &[(&str, &str)] = &[
    ("cmd", "PERMTCP_CMD_"),
    ("attr", "PERMTCP_A_"),
    ("decl_attr", "PERMTCP_DECL_A_"),
    ("range_attr", "PERMTCP_RANGE_A_"),
    ("conn_attr", "PERMTCP_CONN_A_"),
    ("half_attr", "PERMTCP_HALF_A_"),
    ("taken_attr", "PERMTCP_TAKEN_A_"),
    ("directive_attr", "PERMTCP_DIRECTIVE_A_"),
    ("handoff_attr", "PERMTCP_HANDOFF_A_"),
    ("stats_attr", "PERMTCP_STATS_A_"),
    ("conn_state", "PERMTCP_CONN_STATE_"),
    ("not_ready", "PERMTCP_NOT_READY_"),
    ("failover", "PERMTCP_FAILOVER_"),
    ("arp", "PERMTCP_ARP_"),
    ("rxdata", "PERMTCP_RX_"),
    ("midresp", "PERMTCP_MID_RESPONSE_"),
    ("handoff_status", "PERMTCP_HANDOFF_STATUS_"),
];

const SPEC: &str = "../../Documentation/netlink/specs/permtcp.yaml";
const HEADER: &str = "../../include/uapi/linux/permtcp.h";

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))).expect(rel)
}

/// C name -> (C enum type, value), for the header's enumerators (`NAME = NUMBER,` inside
/// `enum TYPE {`).
fn header_enums() -> BTreeMap<String, (String, i64)> {
    let mut map = BTreeMap::new();
    let mut ty = String::new();
    for line in read(HEADER).lines() {
        if let Some(t) = line
            .strip_prefix("enum ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            ty = t.to_string();
        } else if let Some((name, rest)) = line.trim().split_once(" = ") {
            let v = rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(',');
            map.insert(name.to_string(), (ty.clone(), v.parse().unwrap()));
        }
    }
    map
}

/// C name -> value, for the header's enumerators.
fn header() -> BTreeMap<String, i64> {
    header_enums()
        .into_iter()
        .map(|(n, (_, v))| (n, v))
        .collect()
}

/// One numeric constant of uapi.rs: its value and the first line of its doc comment.
struct RustConst {
    value: i64,
    doc: String,
}

/// C name -> constant, for uapi.rs's numeric constants (the `MAX` aliases are skipped).
fn rust_consts() -> BTreeMap<String, RustConst> {
    let mut map = BTreeMap::new();
    let mut prefix = None;
    let mut doc: Option<String> = None;
    for line in read("uapi.rs").lines() {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            prefix = PREFIXES.iter().find(|(r, _)| *r == m).map(|(_, c)| *c);
            // The module's own doc is not its first constant's.
            doc = None;
            // IP protocol numbers are IANA's, not part of the header.
            assert!(
                prefix.is_some() || m == "proto",
                "module {m} has no C prefix"
            );
            continue;
        }
        let line = line.trim();
        if let Some(d) = line.strip_prefix("///") {
            doc.get_or_insert_with(|| d.trim().to_string());
            continue;
        }
        let doc = doc.take().unwrap_or_default();
        let (Some(p), Some(decl)) = (prefix, line.strip_prefix("pub const ")) else {
            continue;
        };
        let (name, rest) = decl.split_once(':').unwrap();
        let value = rest.split('=').nth(1).unwrap().trim().trim_end_matches(';');
        if let Ok(value) = value.parse() {
            map.insert(format!("{p}{name}"), RustConst { value, doc });
        }
    }
    map
}

/// C name -> value, for uapi.rs's numeric constants.
fn rust() -> BTreeMap<String, i64> {
    rust_consts()
        .into_iter()
        .map(|(n, c)| (n, c.value))
        .collect()
}

/// What the spec says of one attribute.
#[derive(Debug)]
struct SpecAttr {
    ty: String,
    multi: bool,
}

/// The spec, numbered: C name -> (C enum type, value) for every command, attribute and enum
/// value, and C name -> type for every attribute.
struct Spec {
    yaml: Value,
    enums: BTreeMap<String, (String, i64)>,
    attrs: BTreeMap<String, SpecAttr>,
}

fn c_upper(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

fn str_of<'a>(v: &'a Value, key: &str, what: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no string {key}"))
}

fn seq_of<'a>(v: &'a Value, key: &str, what: &str) -> &'a [Value] {
    v[key]
        .as_sequence()
        .unwrap_or_else(|| panic!("{what}: no list {key}"))
}

fn spec() -> Spec {
    let yaml: Value = serde_yaml::from_str(&read(SPEC)).expect("the spec is YAML");
    let mut enums = BTreeMap::new();
    let mut attrs = BTreeMap::new();
    let mut add = |name: String, ty: &str, v: i64| {
        let old = enums.insert(name.clone(), (c_upper(ty), v));
        assert!(old.is_none(), "{name} defined twice in the spec");
    };
    // Enumerations: values from value-start (default 0), or as given.
    for def in seq_of(&yaml, "definitions", "spec") {
        let what = str_of(def, "name", "definition");
        assert_eq!(str_of(def, "type", what), "enum", "{what}");
        let (prefix, ty) = (
            str_of(def, "name-prefix", what),
            str_of(def, "enum-name", what),
        );
        let mut v = def["value-start"].as_i64().unwrap_or(0);
        for e in seq_of(def, "entries", what) {
            let name = e.as_str().unwrap_or_else(|| str_of(e, "name", what));
            v = e["value"].as_i64().unwrap_or(v);
            add(c_upper(&format!("{prefix}{name}")), ty, v);
            v += 1;
        }
    }
    // Attribute sets: numbered from 1, or from a given value on.
    for set in seq_of(&yaml, "attribute-sets", "spec") {
        let what = str_of(set, "name", "attribute set");
        let (prefix, ty) = (
            str_of(set, "name-prefix", what),
            str_of(set, "enum-name", what),
        );
        let mut v = 1;
        for a in seq_of(set, "attributes", what) {
            let name = c_upper(&format!("{prefix}{}", str_of(a, "name", what)));
            v = a["value"].as_i64().unwrap_or(v);
            add(name.clone(), ty, v);
            let attr = SpecAttr {
                ty: str_of(a, "type", &name).to_string(),
                multi: a["multi-attr"].as_bool().unwrap_or(false),
            };
            attrs.insert(name, attr);
            v += 1;
        }
    }
    // Operations (one enum for requests and replies): numbered from 1, or as given.
    let ops = &yaml["operations"];
    let (prefix, ty) = (
        str_of(ops, "name-prefix", "operations"),
        str_of(ops, "enum-name", "operations"),
    );
    let mut v = 1;
    for op in seq_of(ops, "list", "operations") {
        v = op["value"].as_i64().unwrap_or(v);
        add(
            c_upper(&format!("{prefix}{}", str_of(op, "name", "operation"))),
            ty,
            v,
        );
        v += 1;
    }
    Spec { yaml, enums, attrs }
}

#[test]
fn constants_match_the_c_header() {
    let (h, r) = (header(), rust());
    assert!(r.len() > 100, "parsed {} Rust constants", r.len());
    for (name, v) in &r {
        assert_eq!(
            h.get(name),
            Some(v),
            "{name} differs or is missing in the header"
        );
    }
    for (name, v) in &h {
        if name.ends_with("_UNSPEC") {
            assert_eq!(*v, 0, "{name}");
            continue;
        }
        if PREFIXES.iter().any(|(_, p)| name.starts_with(p)) {
            assert_eq!(
                r.get(name),
                Some(v),
                "{name} differs or is missing in uapi.rs"
            );
        }
    }
}

/// Every enumerator of the header is in the spec with the same value and in the same C
/// enum type, and the spec has nothing more.
#[test]
fn spec_matches_the_c_header() {
    let (h, s) = (header_enums(), spec().enums);
    assert!(s.len() > 150, "numbered {} spec names", s.len());
    for (name, (ty, v)) in &h {
        let want = (c_upper(ty), *v);
        assert_eq!(
            s.get(name),
            Some(&want),
            "{name} (enum {ty}) differs or is missing in the spec"
        );
    }
    for (name, (ty, v)) in &s {
        assert!(
            h.contains_key(name),
            "{name} = {v} (enum {ty}) of the spec is missing in the header"
        );
    }
}

/// Every Rust constant is in the spec with the same value, and every spec name of a module
/// uapi.rs mirrors is in uapi.rs (UNSPEC entries aside, which uapi.rs has only for some).
#[test]
fn spec_matches_the_rust_constants() {
    let (r, s) = (rust(), spec().enums);
    for (name, v) in &r {
        assert_eq!(
            s.get(name).map(|(_, v)| v),
            Some(v),
            "{name} differs or is missing in the spec"
        );
    }
    for (name, (_, v)) in &s {
        if name.ends_with("_UNSPEC") {
            assert_eq!(*v, 0, "{name}");
            continue;
        }
        assert!(
            PREFIXES.iter().any(|(_, p)| name.starts_with(p)),
            "{name} of the spec has no uapi.rs module"
        );
        assert_eq!(
            r.get(name),
            Some(v),
            "{name} of the spec differs or is missing in uapi.rs"
        );
    }
}

/// The spec's attribute type of each attribute is the one uapi.rs documents (the first
/// words of its doc comment: `u32: ...`, `16 bytes: ...`, `Nested ...`, `flag: ...`), and an
/// attribute uapi.rs calls repeatable or repeated is a multi-attr.
#[test]
fn spec_attribute_types_match_the_rust_docs() {
    let (r, s) = (rust_consts(), spec().attrs);
    let mut checked = 0;
    for (name, c) in &r {
        // Commands and enum values are not attributes; UNSPEC is reserved.
        let Some(attr) = s.get(name).filter(|a| a.ty != "unused") else {
            continue;
        };
        // The type part: up to the first ':' or ';'.
        let head = c.doc.split([':', ';']).next().unwrap().to_ascii_lowercase();
        let ty = ["u8", "u16", "u32", "u64", "flag"]
            .into_iter()
            .find(|t| head.starts_with(t))
            .or_else(|| head.starts_with("nested").then_some("nest"))
            .or_else(|| head.starts_with("binary").then_some("binary"))
            .or_else(|| {
                head.starts_with("nul-terminated string")
                    .then_some("string")
            })
            .or_else(|| {
                let n = head.split_once(" bytes")?.0;
                n.parse::<u32>().is_ok().then_some("binary")
            });
        let Some(ty) = ty else {
            panic!("{name}: no type in the uapi.rs doc \"{}\"", c.doc);
        };
        assert_eq!(
            attr.ty, ty,
            "{name}: spec type vs uapi.rs doc \"{}\"",
            c.doc
        );
        if head.contains("repeat") {
            assert!(
                attr.multi,
                "{name}: repeatable in uapi.rs, not multi-attr in the spec"
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "checked {checked} attribute types");
}

#[test]
fn family_name_and_version() {
    let text = read(HEADER);
    assert!(text.contains(&format!(
        "#define PERMTCP_FAMILY_NAME\t\"{}\"",
        permtcp_logic::uapi::FAMILY_NAME
    )));
    assert!(text.contains(&format!(
        "#define PERMTCP_FAMILY_VERSION\t{}",
        permtcp_logic::uapi::FAMILY_VERSION
    )));
    let spec = spec().yaml;
    assert_eq!(
        spec["name"].as_str(),
        Some(permtcp_logic::uapi::FAMILY_NAME)
    );
    assert_eq!(
        spec["version"].as_u64(),
        Some(permtcp_logic::uapi::FAMILY_VERSION.into())
    );
    // The defines the spec names for them are the header's.
    for key in ["c-family-name", "c-version-name"] {
        let define = c_upper(str_of(&spec, key, "spec"));
        assert!(
            text.contains(&format!("#define {define}\t")),
            "{key}: {define}"
        );
    }
}
