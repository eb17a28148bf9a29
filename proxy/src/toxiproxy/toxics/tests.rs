use serde_json::json;

use super::*;

#[test]
fn create_fills_zero_attributes_and_rejects_unknown_types() {
    let kind = Kind::create("latency", Some(&json!({"latency": 100})))
        .unwrap()
        .unwrap();
    assert_eq!(kind.attributes(), json!({"latency": 100, "jitter": 0}));
    assert!(Kind::create("packet_loss", None).is_none());
    for name in TYPES {
        let attrs = if name == "slicer" {
            Some(json!({"average_size": 1}))
        } else {
            None
        };
        let kind = Kind::create(name, attrs.as_ref()).unwrap().unwrap();
        assert_eq!(kind.type_name(), name);
    }
}

#[test]
fn partial_update_keeps_attributes_not_sent() {
    let kind = Kind::create("latency", Some(&json!({"latency": 100, "jitter": 10})))
        .unwrap()
        .unwrap();
    let updated = kind.update(Some(&json!({"jitter": 3}))).unwrap();
    assert_eq!(updated.attributes(), json!({"latency": 100, "jitter": 3}));
    // Attributes a toxic does not have are ignored, as Toxiproxy's decoder does.
    let same = kind.update(Some(&json!({"rate": 5}))).unwrap();
    assert_eq!(same, kind);
    assert_eq!(kind.update(None).unwrap(), kind);
}

#[test]
fn huge_or_negative_values_are_refused_naming_field_and_value() {
    let cases = [
        ("latency", json!({"latency": 86_400_001})),
        ("latency", json!({"jitter": -1})),
        ("bandwidth", json!({"rate": 10_000_001})),
        ("slow_close", json!({"delay": i64::MAX})),
        ("timeout", json!({"timeout": -5})),
        ("reset_peer", json!({"timeout": 1_000_000_000_000i64})),
        ("limit_data", json!({"bytes": (1i64 << 53) + 1})),
        ("slicer", json!({"average_size": 0})),
        ("slicer", json!({"average_size": 10, "size_variation": 11})),
    ];
    for (name, attrs) in cases {
        let error = Kind::create(name, Some(&attrs)).unwrap().unwrap_err();
        let field = attrs
            .as_object()
            .unwrap()
            .keys()
            .next_back()
            .unwrap()
            .clone();
        let text = error.to_string();
        assert!(
            text.contains(&format!("attributes.{field}")),
            "{name} {attrs}: {text}"
        );
    }
    let error = Kind::create("latency", Some(&json!({"latency": u64::MAX})))
        .unwrap()
        .unwrap_err();
    assert!(
        error.to_string().contains("18446744073709551615"),
        "{error}"
    );
}

#[test]
fn wrong_types_are_refused() {
    let error = Kind::create("latency", Some(&json!({"latency": "100ms"})))
        .unwrap()
        .unwrap_err();
    assert!(error.to_string().contains("\"100ms\""), "{error}");
    let error = Kind::create("latency", Some(&json!({"latency": 1.5})))
        .unwrap()
        .unwrap_err();
    assert!(error.to_string().contains("1.5"), "{error}");
    let error = Kind::create("latency", Some(&json!([1])))
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, AttributeError::NotObject(_)), "{error}");
}

#[test]
fn toxicity_is_bounded() {
    assert_eq!(check_toxicity(0.5).unwrap(), 0.5);
    assert!(check_toxicity(1.5).is_err());
    assert!(check_toxicity(-0.1).is_err());
}

#[test]
fn slicer_sizes_stay_within_variation() {
    let slicer = Slicer {
        average_size: 10,
        size_variation: 4,
        delay: 0,
    };
    for _ in 0..1000 {
        let size = slicer.next_size();
        assert!((6..=14).contains(&size), "{size}");
    }
}
