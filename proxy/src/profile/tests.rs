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

fn delays(rules: &[LinkRule]) -> std::collections::BTreeMap<(String, String), (u64, u64)> {
    rules
        .iter()
        .map(|r| match &r.fault {
            Fault::Degrade(d) => ((r.from.clone(), r.to.clone()), (d.latency_ms, d.jitter_ms)),
            other => panic!("wan cut a link: {other:?}"),
        })
        .collect()
}

#[test]
fn wan_delays_links_between_regions_only_and_takes_the_delay_at_apply_time() {
    let p = ProfileLibrary::builtin().get("wan").unwrap().clone();
    // Three regions over five nodes in name order: r1 {n1,n4}, r2 {n2,n5}, r3 {n3}.
    let r = p
        .resolve(
            &topology(5),
            &bindings(&[("delay", "5ms"), ("jitter", "1")]),
        )
        .unwrap();
    let d = delays(&r.rules);
    assert_eq!(d.len(), 20, "every ordered pair of members has a rule");
    assert_eq!(d[&("n1".into(), "n4".into())], (0, 0), "same region");
    assert_eq!(d[&("n1".into(), "n2".into())], (5, 1));
    assert_eq!(d[&("n3".into(), "n5".into())], (5, 1));
    assert!(!r.rules.iter().any(|r| r.from == CLIENT || r.to == CLIENT));
    assert!(
        r.summary
            .starts_with("3 region(s) r1{n1,n4} r2{n2,n5} r3{n3}; 5 ms ± 1 ms"),
        "{}",
        r.summary
    );
    // Without a binding the profile's own [degrade] applies.
    let r = p.resolve(&topology(3), &Bindings::new()).unwrap();
    assert!(delays(&r.rules).values().all(|v| *v == (20, 0)));
    // One region: nothing between regions, every link undelayed.
    let r = p
        .resolve(
            &topology(3),
            &bindings(&[("regions", "1"), ("delay", "20ms")]),
        )
        .unwrap();
    assert!(delays(&r.rules).values().all(|v| *v == (0, 0)));
    // Two regions and one pair overridden.
    let r = p
        .resolve(
            &topology(3),
            &bindings(&[("regions", "2"), ("delay.r1-r2", "50ms")]),
        )
        .unwrap();
    let d = delays(&r.rules);
    assert_eq!(d[&("n1".into(), "n3".into())], (0, 0));
    assert_eq!(d[&("n2".into(), "n1".into())], (50, 0));
}

#[test]
fn wan_places_nodes_by_the_topologys_regions_unless_the_apply_says_otherwise() {
    let p = ProfileLibrary::builtin().get("wan").unwrap().clone();
    let mut t = topology(4);
    for (node, region) in t.nodes.iter_mut().zip(["eu", "eu", "us", "ap"]) {
        node.region = Some(region.into());
    }
    let r = p.resolve(&t, &bindings(&[("delay", "10ms")])).unwrap();
    let d = delays(&r.rules);
    assert_eq!(d[&("n1".into(), "n2".into())], (0, 0), "both in eu");
    assert_eq!(d[&("n2".into(), "n3".into())], (10, 0));
    assert_eq!(d[&("n4".into(), "n3".into())], (10, 0));
    assert!(
        r.summary
            .starts_with("3 region(s) r1=eu{n1,n2} r2=us{n3} r3=ap{n4}; 10 ms"),
        "{}",
        r.summary
    );
    // A pair by the regions' numbers.
    let r = p
        .resolve(&t, &bindings(&[("delay.r1-r3", "40ms")]))
        .unwrap();
    assert_eq!(delays(&r.rules)[&("n1".into(), "n4".into())], (40, 0));
    // `regions` at apply time replaces the topology's placement.
    let r = p.resolve(&t, &bindings(&[("regions", "2")])).unwrap();
    assert!(
        r.summary.starts_with("2 region(s) r1{n1,n3} r2{n2,n4}"),
        "{}",
        r.summary
    );
}

#[test]
fn wan_names_bad_values_and_fields() {
    let p = ProfileLibrary::builtin().get("wan").unwrap().clone();
    for (key, value, says) in [
        ("delay", "soon", "delay=soon"),
        ("delay", "1500us", "whole milliseconds"),
        ("regions", "9", "from 1 to 3"),
        ("delay.r1-r7", "5ms", "name two of the 3 regions"),
    ] {
        let e = p
            .resolve(&topology(3), &bindings(&[(key, value)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("profile wan") && e.contains(says),
            "{key}={value}: {e}"
        );
    }
    assert!(p.takes_parameter("delay") && p.takes_parameter("delay.r1-r2"));
    assert!(!p.takes_parameter("target"));
    let groups = "description = \"d\"\nkind = \"wan\"\ngroups = [[\"n1\"], [\"n2\", \"n3\"]]\n\
                  [[pair]]\nbetween = [\"r1\", \"r2\"]\nlatency_ms = 30\n";
    let g = Profile::parse(groups, "g", "g.toml").unwrap();
    let d = delays(&g.resolve(&topology(3), &Bindings::new()).unwrap().rules);
    assert_eq!(d[&("n3".into(), "n1".into())], (30, 0));
    assert_eq!(d[&("n2".into(), "n3".into())], (0, 0));
    let bad = "description = \"d\"\nkind = \"split\"\nregions = 2\n";
    let e = Profile::parse(bad, "b", "b.toml").unwrap_err().to_string();
    assert!(e.contains("b.toml") && e.contains("regions"), "{e}");
    let bad = "description = \"d\"\nkind = \"wan\"\n[[pair]]\nbetween = [\"eu\", \"r2\"]\n";
    let e = Profile::parse(bad, "b", "b.toml").unwrap_err().to_string();
    assert!(e.contains("pair.between") && e.contains("eu"), "{e}");
}
