//! Parsing scenario files: good ones, and errors naming file and field.

use super::*;

const GOOD: &str = r#"
name = "t"
[cluster]
system = "etcd"
nodes = 3
pre_vote = false
[fault]
profile = "minority-isolation"
bindings = { target = "leader" }
[timeline]
hold = "3s"
[[checker]]
kind = "leader-step-down"
within = "2s"
"#;

#[test]
fn parses_a_scenario() {
    let s = Scenario::parse(GOOD, "t.toml").unwrap();
    assert_eq!(s.cluster.system, "etcd");
    assert_eq!(s.cluster.nodes, 3);
    assert_eq!(
        s.cluster.settings.get("pre_vote"),
        Some(&toml::Value::Boolean(false))
    );
    assert_eq!(s.timeline.hold, Duration::from_secs(3));
    assert_eq!(s.timeline.baseline, Duration::from_secs(2));
    assert_eq!(s.fault.bindings["target"], "leader");
    assert_eq!(s.checkers[0].kind, "leader-step-down");
    assert!(s.checkers[0].settings.contains_key("within"));
    assert_eq!(s.fault_label(), "minority-isolation");
}

#[test]
fn unknown_fields_name_file_and_field() {
    let bad = GOOD.replace("[timeline]", "[timeline]\nhodl = \"3s\"");
    let e = Scenario::parse(&bad, "x.toml").unwrap_err().to_string();
    assert!(e.contains("x.toml") && e.contains("hodl"), "{e}");
    let bad = GOOD.replace("profile = ", "profle = ");
    let e = Scenario::parse(&bad, "x.toml").unwrap_err().to_string();
    assert!(e.contains("profle"), "{e}");
    let bad = GOOD.replace("nodes = 3", "nodes = \"three\"");
    let e = Scenario::parse(&bad, "x.toml").unwrap_err().to_string();
    assert!(e.contains("cluster.nodes") && e.contains("three"), "{e}");
    let bad = GOOD.replace("hold = \"3s\"", "hold = \"3 parsecs\"");
    let e = Scenario::parse(&bad, "x.toml").unwrap_err().to_string();
    assert!(e.contains("3 parsecs"), "{e}");
}

#[test]
fn checker_settings_are_checked_by_the_checker_type() {
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        within: String,
    }
    let s = Scenario::parse(&GOOD.replace("within", "witin"), "y.toml").unwrap();
    let e = s.checkers[0].parse::<Cfg>().unwrap_err().to_string();
    assert!(
        e.contains("y.toml: [[checker]] #1 (leader-step-down)") && e.contains("witin"),
        "{e}"
    );
}

#[test]
fn fault_needs_exactly_one_source() {
    let both = GOOD.replace(
        "bindings = { target = \"leader\" }",
        "rules = [{ from = \"etcd1\", to = \"etcd2\", fault = { kind = \"hold\" } }]",
    );
    assert!(
        Scenario::parse(&both, "z")
            .unwrap_err()
            .to_string()
            .contains("not both")
    );
    let inline = both.replace("profile = \"minority-isolation\"\n", "");
    let s = Scenario::parse(&inline, "z").unwrap();
    assert_eq!(s.fault.rules[0].to, "etcd2");
    assert_eq!(s.fault_label(), "inline");
    let none = GOOD.replace(
        "[[checker]]\nkind = \"leader-step-down\"\nwithin = \"2s\"\n",
        "",
    );
    assert!(
        Scenario::parse(&none, "z")
            .unwrap_err()
            .to_string()
            .contains("checker")
    );
}

const STEPS: &str = r#"
name = "s"
[cluster]
system = "etcd"
nodes = 3
[[step]]
at = "0s"
profile = "leader-isolation"
hold = "6s"
[[step]]
at = "12s"
profile = "minority-isolation"
bindings = { target = "follower1" }
hold = "4s"
[[step]]
at = "2s"
rules = [{ from = "etcd1", to = "etcd2", fault = { kind = "degrade", latency_ms = 50 } }]
hold = "3s"
[timeline]
baseline = "1s"
[[checker]]
kind = "leader-step-down"
"#;

#[test]
fn steps_are_a_schedule_in_start_order_and_may_overlap() {
    let s = Scenario::parse(STEPS, "s.toml").unwrap();
    let steps = s.schedule();
    let at: Vec<u64> = steps.iter().map(|s| s.at.as_secs()).collect();
    assert_eq!(at, [0, 2, 12]);
    assert_eq!(steps[0].label(), "leader-isolation");
    assert_eq!(steps[1].label(), "inline");
    assert_eq!(steps[2].fault.bindings["target"], "follower1");
    assert!(
        steps[1].at < steps[0].end(),
        "the delay overlaps the isolation"
    );
    assert_eq!(s.profiles(), ["leader-isolation", "minority-isolation"]);
}

#[test]
fn a_scenario_has_exactly_one_fault_source_and_each_step_is_checked() {
    let both = STEPS.replace("[timeline]", "[fault]\nprofile = \"split\"\n[timeline]");
    let e = Scenario::parse(&both, "b.toml").unwrap_err().to_string();
    assert!(e.contains("b.toml") && e.contains("exactly one of"), "{e}");
    let hold = STEPS.replace("baseline = \"1s\"", "baseline = \"1s\"\nhold = \"3s\"");
    let e = Scenario::parse(&hold, "h.toml").unwrap_err().to_string();
    assert!(
        e.contains("timeline.hold") && e.contains("[fault] only"),
        "{e}"
    );
    let empty = STEPS.replace("profile = \"minority-isolation\"\n", "");
    let e = Scenario::parse(&empty, "e.toml").unwrap_err().to_string();
    assert!(
        e.contains("step[2]") && e.contains("give a profile or inline rules"),
        "{e}"
    );
    let no_hold = STEPS.replace("hold = \"3s\"", "");
    let e = Scenario::parse(&no_hold, "n.toml").unwrap_err().to_string();
    assert!(e.contains("n.toml") && e.contains("hold"), "{e}");
    let generator = r#"
name = "g"
[cluster]
system = "etcd"
nodes = 3
[generator]
profiles = ["leader-isolation", "bridge"]
interval = "8s"
hold = "3s..6s"
duration = "60s"
seed = 42
[timeline]
[[checker]]
kind = "leader-step-down"
"#;
    let s = Scenario::parse(generator, "g.toml").unwrap();
    assert!(s.schedule().len() >= 3);
    assert_eq!(s.schedule(), s.schedule(), "a seed fixes the schedule");
    let bad = generator.replace("3s..6s", "6s..3s");
    let e = Scenario::parse(&bad, "g.toml").unwrap_err().to_string();
    assert!(e.contains("generator.hold") && e.contains("6s..3s"), "{e}");
}

#[test]
fn actions_are_parsed_and_a_bad_one_is_named() {
    let s = Scenario::parse(
        &format!("{GOOD}\n[[action]]\nat = \"2s\"\nname = \"promote\"\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        s.actions,
        [ActionSpec {
            at: Duration::from_secs(2),
            name: "promote".into()
        }]
    );
    let e = Scenario::parse(
        &format!("{GOOD}\n[[action]]\nat = \"2s\"\nname = \" \"\n"),
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("t.toml") && e.contains("action[1].name"), "{e}");
    let e = Scenario::parse(
        &format!("{GOOD}\n[[action]]\nat = \"2s\"\nname = \"promote\"\nnode = \"x\"\n"),
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("t.toml") && e.contains("node"), "{e}");
}
