use rift_history::{Consistency, Entry, History, NemesisOp, Observation, Op, OpType};
use rift_proxy::profile::{Bindings, ProfileLibrary};
use rift_proxy::topology::Topology;
use serde_json::json;

use super::judge::{Outcome, measure};
use super::*;
use crate::scenario::Status;

const MS: u64 = 1_000_000;

fn topology() -> Topology {
    let mut text = String::new();
    for i in 1..=3 {
        text.push_str(&format!(
            "[[node]]\nname = \"etcd{i}\"\n[[node.endpoint]]\nname = \"peer\"\nlisten = \"127.0.0.1:{}\"\nupstream = \"127.0.0.1:{}\"\n",
            21000 + i,
            31000 + i
        ));
    }
    Topology::parse(&text, "test").unwrap()
}

/// The rules the built-in wan profile gives for these bindings, as the proxy returns them.
fn wan_rules(bindings: &[(&str, &str)]) -> serde_json::Value {
    let b: Bindings = bindings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = ProfileLibrary::builtin()
        .get("wan")
        .unwrap()
        .resolve(&topology(), &b)
        .unwrap();
    serde_json::to_value(&r.rules).unwrap()
}

/// Latency model of one class (ms) given the one-way delay between members.
type Model = fn(&str, u64) -> f64;

/// etcd as its protocol implies: lin read and put pay the leader's quorum round trip,
/// plus the round trip to the leader from a follower; serializable reads pay nothing.
fn etcd(class: &str, d: u64) -> f64 {
    let rtt = 2.0 * d as f64;
    match class {
        "lin-leader" | "put-leader" => 1.0 + rtt,
        "lin-follower" | "put-follower" => 1.5 + 2.0 * rtt,
        _ => 0.8,
    }
}

/// A cluster that pays nothing anywhere (or a profile whose delay never reached it).
fn flat(_class: &str, _d: u64) -> f64 {
    1.0
}

struct Builder {
    entries: Vec<Entry>,
    process: u64,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder {
            entries: Vec::new(),
            process: 0,
        };
        for t in (0..20_000).step_by(500) {
            // The proxy is observed too; it is no member and no round trip leads to it.
            b.entries.push(Entry::Observation(Observation {
                index: 0,
                time: t * MS + MS,
                started: t * MS,
                observation: "rift-status".into(),
                node: "rift".into(),
                value: json!({}),
                error: None,
            }));
            for n in 1..=3 {
                b.entries.push(Entry::Observation(Observation {
                    index: 0,
                    time: t * MS + MS,
                    started: t * MS,
                    observation: "etcd-status".into(),
                    node: format!("etcd{n}"),
                    value: json!({"leader": "etcd1"}),
                    error: None,
                }));
            }
        }
        b
    }

    /// `per` operations of every class between `from` and `to` ms, each `model` long.
    fn ops(&mut self, from: u64, to: u64, per: u64, delay: u64, model: Model) {
        let classes = [
            (
                "lin-leader",
                "etcd1",
                "read",
                Some(Consistency::Linearizable),
            ),
            (
                "lin-follower",
                "etcd2",
                "read",
                Some(Consistency::Linearizable),
            ),
            (
                "ser-leader",
                "etcd1",
                "read",
                Some(Consistency::Serializable),
            ),
            (
                "ser-follower",
                "etcd3",
                "read",
                Some(Consistency::Serializable),
            ),
            ("put-leader", "etcd1", "write", None),
            ("put-follower", "etcd3", "write", None),
        ];
        for (name, node, f, consistency) in classes {
            for i in 0..per {
                let at = from + (to - from) * i / per;
                // A little spread, as a real run has.
                let latency = model(name, delay) + (i % 3) as f64 * 0.2;
                self.process += 1;
                let mut invoke =
                    Op::invoke(at * MS, self.process, f, Some("k"), json!(null)).with_node(node);
                if let Some(c) = consistency {
                    invoke = invoke.with_consistency(c);
                }
                let done = invoke.complete(at * MS + (latency * 1e6) as u64, OpType::Ok, json!(1));
                self.entries.push(Entry::Op(invoke));
                self.entries.push(Entry::Op(done));
            }
        }
    }

    /// A wan step from `from` to `to` ms, asking for `delay` ms one way.
    fn step(
        &mut self,
        id: u64,
        (from, to): (u64, u64),
        delay: u64,
        rules: serde_json::Value,
        per: u64,
        model: Model,
    ) {
        self.entries.push(Entry::Nemesis(NemesisOp::new(
            from * MS - MS,
            from * MS,
            "start",
            json!({"id": id, "label": "wan", "rules": rules,
                   "bindings": {"leader": "etcd1", "delay": format!("{delay}ms")}}),
        )));
        self.ops(from + 400, to - 300, per, delay, model);
        self.entries.push(Entry::Nemesis(NemesisOp::new(
            to * MS,
            to * MS + MS,
            "stop",
            json!({"id": id, "label": "wan", "rules": []}),
        )));
    }

    fn history(mut self) -> History {
        self.entries.sort_by_key(|e| e.time());
        for (i, e) in self.entries.iter_mut().enumerate() {
            match e {
                Entry::Op(o) => o.index = i,
                Entry::Nemesis(o) => o.index = i,
                Entry::Observation(o) => o.index = i,
                Entry::Phase(p) => p.index = i,
            }
        }
        History::new(self.entries)
    }
}

/// A sweep of 0, 5, 20 and 50 ms one way through the wan profile, latencies by `model`.
fn sweep(model: Model, rules_for: fn(u64) -> serde_json::Value, per: u64) -> History {
    let mut b = Builder::new();
    b.ops(100, 1900, 10, 0, model);
    for (i, d) in [0u64, 5, 20, 50].iter().enumerate() {
        let from = 2000 + 4000 * i as u64;
        b.step(
            i as u64 + 1,
            (from, from + 3500),
            *d,
            rules_for(*d),
            per,
            model,
        );
    }
    b.history()
}

fn three_regions(d: u64) -> serde_json::Value {
    wan_rules(&[("delay", &format!("{d}ms"))])
}

/// A profile that adds no delay: the wan profile with every member in one region.
fn one_region(d: u64) -> serde_json::Value {
    wan_rules(&[("delay", &format!("{d}ms")), ("regions", "1")])
}

#[test]
fn etcd_as_its_protocol_implies_passes_with_ec_and_el_classes() {
    let h = sweep(etcd, three_regions, 8);
    let v = Pacelc::new(Settings::default()).check(&h);
    assert_eq!(v.status, Status::Pass, "{}\n{:#?}", v.summary, v.evidence);
    assert!(
        v.summary.contains(
            "EC: linearizable read @follower, linearizable read @leader, put @follower, put @leader"
        ),
        "{}",
        v.summary
    );
    assert!(
        v.summary
            .contains("EL): serializable read @follower, serializable read @leader"),
        "{}",
        v.summary
    );
    let m = v.pacelc.as_ref().unwrap();
    assert_eq!(
        m.steps
            .iter()
            .map(|s| s.injected_rtt_ms)
            .collect::<Vec<_>>(),
        vec![0, 10, 40, 100]
    );
    // The 0 ms step is a point of the curve, not a judgement.
    assert!(
        m.steps[0]
            .classes
            .iter()
            .all(|c| c.outcome == Outcome::Point)
    );
    let put_follower = m.steps[3]
        .classes
        .iter()
        .find(|c| c.class == "put @follower")
        .unwrap();
    assert_eq!(
        put_follower.must_pay_ms, 200,
        "RTT to the leader plus its quorum RTT"
    );
    assert!((put_follower.added_ms.unwrap() - 200.0).abs() < 1.0);
    // Every figure states its resolution.
    assert!(
        v.evidence
            .iter()
            .any(|e| e.starts_with("resolution:") && e.contains("p50") && e.contains("ns"))
    );
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("of n=8 vs baseline p50"))
    );
    let map = cap_map(&h);
    assert_eq!(map.ec, Some(true));
    assert_eq!(
        map.el,
        vec!["serializable read @follower", "serializable read @leader"]
    );
    let lin = map
        .classes
        .iter()
        .find(|c| c.class == "linearizable read @leader")
        .unwrap();
    let added: Vec<i64> = lin
        .points
        .iter()
        .map(|p| p.added_ms.unwrap().round() as i64)
        .collect();
    assert_eq!(added, vec![0, 10, 40, 100]);
    let svg = svg::render(m);
    assert_eq!(svg.matches("class=\"pacelc-class\"").count(), 6);
    assert!(
        svg.contains("linearizable read @leader: +40.0 ms at 40 ms RTT"),
        "{svg}"
    );
}

#[test]
fn a_profile_that_adds_no_delay_fails_and_says_why() {
    let h = sweep(flat, one_region, 8);
    let v = Pacelc::new(Settings::default()).check(&h);
    assert_eq!(v.status, Status::Fail, "{:#?}", v.evidence);
    // Why: the consistent classes did not pay the round trip the step asked for ...
    assert!(
        v.summary
            .starts_with("step 2: linearizable read @follower: Fail: added 0.0 ms")
            && v.summary.contains("did not pay the 20 ms round trip"),
        "{}",
        v.summary
    );
    // ... because the rules the proxy applied put no delay between the members.
    assert!(
        v.evidence.iter().any(|e| e
            .starts_with("step 3 (wan, delay 20 ms one way, injected RTT 40 ms")
            && e.contains(
                "the proxy's rules put none between members (the profile adds no delay)"
            )),
        "{:#?}",
        v.evidence
    );
    let map = cap_map(&h);
    assert_eq!(map.ec, Some(false));
    assert!(
        map.el.contains(&"linearizable read @leader".to_string()),
        "{:?}",
        map.el
    );
}

#[test]
fn a_cluster_whose_local_reads_pay_fails() {
    fn slow_local(class: &str, d: u64) -> f64 {
        if class.starts_with("ser") {
            1.0 + 2.0 * d as f64
        } else {
            etcd(class, d)
        }
    }
    let v = Pacelc::new(Settings::default()).check(&sweep(slow_local, three_regions, 8));
    assert_eq!(v.status, Status::Fail);
    assert!(
        v.summary.contains("serializable read") && v.summary.contains("should be served locally"),
        "{}",
        v.summary
    );
}

#[test]
fn too_few_samples_is_unknown_naming_the_class_and_counts() {
    let v = Pacelc::new(Settings::default()).check(&sweep(etcd, three_regions, 3));
    assert_eq!(v.status, Status::Unknown, "{:#?}", v.evidence);
    assert!(
        v.summary
            .contains("too few samples: 3 ok in the step (0 failed), 10 in the baseline; need 5"),
        "{}",
        v.summary
    );
    let empty = Pacelc::new(Settings::default()).check(&Builder::new().history());
    assert_eq!(empty.status, Status::Unknown);
    assert!(empty.summary.contains("no fault step"), "{}", empty.summary);
}

#[test]
fn a_baseline_too_noisy_for_the_step_is_unknown() {
    let s = Settings {
        tolerance: std::time::Duration::from_millis(6),
        ..Settings::default()
    };
    let m = measure(&sweep(etcd, three_regions, 8), &s);
    let step2 = &m.steps[1];
    let lin = step2
        .classes
        .iter()
        .find(|c| c.class == "linearizable read @leader")
        .unwrap();
    assert_eq!(lin.outcome, Outcome::Unknown);
    assert!(lin.reason.contains("cannot tell"), "{}", lin.reason);
    // At 20 ms one way the same tolerance still decides.
    assert!(
        m.steps[2]
            .classes
            .iter()
            .all(|c| c.outcome == Outcome::Pass)
    );
}

#[test]
fn settings_are_bounded_and_named() {
    let e = Settings {
        min_samples: 0,
        ..Settings::default()
    }
    .validate("f.toml: [[checker]] #1 (pacelc)")
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("f.toml") && e.contains("min_samples") && e.contains('0'),
        "{e}"
    );
}

#[test]
fn a_sweep_that_never_injects_a_delay_is_unknown_not_pass() {
    let mut b = Builder::new();
    b.ops(100, 1900, 10, 0, etcd);
    b.step(1, (2000, 5500), 0, three_regions(0), 8, etcd);
    let v = Pacelc::new(Settings::default()).check(&b.history());
    assert_eq!(
        v.status,
        Status::Unknown,
        "{}\n{:#?}",
        v.summary,
        v.evidence
    );
    assert!(
        v.summary
            .contains("no step injected any delay between members"),
        "{}",
        v.summary
    );
}
