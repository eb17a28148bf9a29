use super::*;
use crate::topology::{CLIENT, Topology};

fn topology(n: usize) -> Topology {
    let mut text = String::new();
    for i in 1..=n {
        text.push_str(&format!(
            "[[node]]\nname = \"n{i}\"\n[[node.endpoint]]\nname = \"peer\"\nlisten = \"127.0.0.1:{}\"\nupstream = \"127.0.0.1:{}\"\n",
            20000 + i,
            30000 + i
        ));
    }
    Topology::parse(&text, "test").unwrap()
}

fn cut(rules: &[LinkRule], from: &str, to: &str) -> bool {
    rules.iter().any(|r| r.from == from && r.to == to)
}

fn bindings(pairs: &[(&str, &str)]) -> Bindings {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_builtin_profile_parses_and_has_a_description() {
    let lib = ProfileLibrary::builtin();
    for name in [
        "split",
        "minority-isolation",
        "leader-isolation",
        "two-vs-two",
        "bridge",
        "one-way",
        "majorities-ring",
        "flaky",
        "random-halves",
    ] {
        let p = lib.get(name).unwrap();
        assert!(!p.description.is_empty(), "{name}");
    }
}

#[test]
fn split_puts_largest_minority_last() {
    let lib = ProfileLibrary::builtin();
    let r = lib
        .get("split")
        .unwrap()
        .resolve(&topology(5), &Bindings::new())
        .unwrap();
    assert_eq!(r.summary, "n1,n2,n3 | n4,n5");
    assert!(cut(&r.rules, "n1", "n4") && cut(&r.rules, "n4", "n1"));
    assert!(!cut(&r.rules, "n1", "n2") && !cut(&r.rules, "n4", "n5"));
    assert!(!r.rules.iter().any(|r| r.from == CLIENT || r.to == CLIENT));
}

#[test]
fn leader_isolation_needs_and_uses_the_binding() {
    let lib = ProfileLibrary::builtin();
    let p = lib.get("leader-isolation").unwrap();
    let e = p
        .resolve(&topology(3), &Bindings::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("target") && e.contains("--set leader=NODE"),
        "{e}"
    );
    let r = p
        .resolve(&topology(3), &bindings(&[("leader", "n2")]))
        .unwrap();
    assert_eq!(r.summary, "n1,n3 | n2");
    assert_eq!(r.rules.len(), 4);
    let e = p
        .resolve(&topology(3), &bindings(&[("leader", "n9")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("n9"), "{e}");
}

#[test]
fn two_vs_two_requires_four_nodes() {
    let lib = ProfileLibrary::builtin();
    let p = lib.get("two-vs-two").unwrap();
    let r = p.resolve(&topology(4), &Bindings::new()).unwrap();
    assert_eq!(r.summary, "n1,n2 | n3,n4");
    assert!(
        p.resolve(&topology(3), &Bindings::new())
            .unwrap_err()
            .to_string()
            .contains("exactly 4")
    );
}

#[test]
fn bridge_node_sees_both_halves() {
    let r = ProfileLibrary::builtin()
        .get("bridge")
        .unwrap()
        .resolve(&topology(5), &Bindings::new())
        .unwrap();
    assert!(r.summary.contains("n3 bridging"), "{}", r.summary);
    assert!(cut(&r.rules, "n1", "n4") && cut(&r.rules, "n5", "n2"));
    assert!(!cut(&r.rules, "n3", "n1") && !cut(&r.rules, "n3", "n5") && !cut(&r.rules, "n1", "n3"));
}

#[test]
fn one_way_cuts_only_outbound_bytes_of_target() {
    let r = ProfileLibrary::builtin()
        .get("one-way")
        .unwrap()
        .resolve(&topology(3), &bindings(&[("target", "n1")]))
        .unwrap();
    assert!(cut(&r.rules, "n1", "n2") && cut(&r.rules, "n1", "n3"));
    assert!(!cut(&r.rules, "n2", "n1") && !cut(&r.rules, "n3", "n1"));
}

#[test]
fn majorities_ring_leaves_each_node_a_majority() {
    let r = ProfileLibrary::builtin()
        .get("majorities-ring")
        .unwrap()
        .resolve(&topology(5), &Bindings::new())
        .unwrap();
    for node in 1..=5 {
        let me = format!("n{node}");
        let reachable = (1..=5)
            .filter(|o| *o != node && !cut(&r.rules, &me, &format!("n{o}")))
            .count()
            + 1;
        assert_eq!(reachable, 3, "{me}");
    }
    assert!(cut(&r.rules, "n1", "n3") && !cut(&r.rules, "n1", "n5"));
}

#[test]
fn random_halves_are_reproducible_by_seed() {
    let lib = ProfileLibrary::builtin();
    let p = lib.get("random-halves").unwrap();
    let a = p.resolve(&topology(5), &Bindings::new()).unwrap();
    let b = p.resolve(&topology(5), &Bindings::new()).unwrap();
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.rules, b.rules);
}

#[test]
fn flaky_degrades_without_cutting() {
    let r = ProfileLibrary::builtin()
        .get("flaky")
        .unwrap()
        .resolve(&topology(3), &Bindings::new())
        .unwrap();
    assert_eq!(r.rules.len(), 6);
    assert!(
        r.rules
            .iter()
            .all(|r| matches!(&r.fault, Fault::Degrade(d) if d.latency_ms == 50))
    );
}

#[test]
fn profile_errors_name_the_file_and_field() {
    let e = Profile::parse(
        "description = \"x\"\nkind = \"split\"\nminorty = 2\n",
        "p",
        "profiles/p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("profiles/p.toml") && e.contains("minorty"),
        "{e}"
    );
    let e = Profile::parse(
        "description = \"x\"\nkind = \"splitz\"\n",
        "p",
        "profiles/p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("splitz"), "{e}");
    let e = Profile::parse(
        "description = \"x\"\nkind = \"isolate\"\nminority = 2\n",
        "p",
        "p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("minority") && e.contains("split"), "{e}");
    let e = Profile::parse("description = \"x\"\nkind = \"flaky\"\n", "p", "p.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("degrade"), "{e}");
    let p = Profile::parse(
        "description = \"x\"\nkind = \"split\"\ngroups = [[\"n1\"], [\"n2\", \"nx\"]]\n",
        "p",
        "p.toml",
    )
    .unwrap();
    let e = p
        .resolve(&topology(3), &Bindings::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups") && e.contains("nx"), "{e}");
    let p = Profile::parse(
        "description = \"x\"\nkind = \"split\"\nminority = 3\n",
        "p",
        "p.toml",
    )
    .unwrap();
    assert!(
        p.resolve(&topology(3), &Bindings::new())
            .unwrap_err()
            .to_string()
            .contains("minority")
    );
}

#[test]
fn split_with_client_on_the_minority_side() {
    let p = Profile::parse(
        "description = \"x\"\nkind = \"split\"\nclient = \"minority\"\n",
        "p",
        "p.toml",
    )
    .unwrap();
    let r = p.resolve(&topology(3), &Bindings::new()).unwrap();
    assert!(cut(&r.rules, CLIENT, "n1") && !cut(&r.rules, CLIENT, "n3"));
}
