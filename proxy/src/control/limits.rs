//! Bounds on every user-given number that reaches the control plane, checked once at
//! its edge so nothing further down (timers, wall-clock formatting, the relay's
//! deadline queue) ever sees a value it cannot represent. Each refusal names the field
//! and the value.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use crate::fault::{Fault, LinkRule};

/// The longest auto-heal a fault may ask for: one year (365.25 days, humantime's
/// `1year`, so the error message reads round).
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// The largest latency, jitter or slow close of a degradation, in milliseconds (1 h).
pub const MAX_DELAY_MS: u64 = 3_600_000;

/// `duration`: positive and at most [`MAX_DURATION`].
pub fn check_duration(field: &str, duration: Option<Duration>) -> Result<(), String> {
    match duration {
        Some(d) if d.is_zero() => Err(format!("{field}: \"0s\": must be positive")),
        Some(d) if d > MAX_DURATION => Err(format!(
            "{field}: {:?}: must be at most {}",
            humantime::format_duration(d).to_string(),
            humantime::format_duration(MAX_DURATION)
        )),
        _ => Ok(()),
    }
}

/// Degradation numbers of every rule.
pub fn check_rules(rules: &[LinkRule]) -> Result<(), String> {
    for (i, rule) in rules.iter().enumerate() {
        let Fault::Degrade(d) = &rule.fault else {
            continue;
        };
        for (field, value) in [
            ("latency_ms", d.latency_ms),
            ("jitter_ms", d.jitter_ms),
            ("slow_close_ms", d.slow_close_ms),
        ] {
            if value > MAX_DELAY_MS {
                return Err(format!(
                    "rules[{i}].fault.{field}: {value}: must be at most {MAX_DELAY_MS}"
                ));
            }
        }
    }
    Ok(())
}

/// RFC 3339 with milliseconds, or `None` for a time it cannot represent (past year
/// 9999): formatting through `to_string` would panic on those.
pub fn rfc3339(time: SystemTime) -> Option<String> {
    let mut text = String::new();
    write!(text, "{}", humantime::format_rfc3339_millis(time)).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Degradation;

    #[test]
    fn durations_are_bounded_and_named() {
        assert!(check_duration("duration", None).is_ok());
        assert!(check_duration("duration", Some(MAX_DURATION)).is_ok());
        let e = check_duration("duration", Some(Duration::from_secs(u64::MAX))).unwrap_err();
        assert!(
            e.starts_with("duration: \"") && e.contains("at most 1year"),
            "{e}"
        );
        let e = check_duration("duration", Some(Duration::ZERO)).unwrap_err();
        assert!(e.contains("positive"), "{e}");
    }

    #[test]
    fn degradation_delays_are_bounded_and_named() {
        let rule = |d: Degradation| LinkRule {
            from: "a".into(),
            to: "b".into(),
            fault: Fault::Degrade(d),
            endpoints: vec![],
        };
        let ok = rule(Degradation {
            latency_ms: MAX_DELAY_MS,
            bandwidth_bytes_per_sec: u64::MAX,
            limit_data_bytes: u64::MAX,
            ..Default::default()
        });
        assert!(check_rules(std::slice::from_ref(&ok)).is_ok());
        let bad = rule(Degradation {
            jitter_ms: u64::MAX,
            ..Default::default()
        });
        let e = check_rules(&[ok, bad]).unwrap_err();
        assert!(
            e.contains("rules[1].fault.jitter_ms") && e.contains(&u64::MAX.to_string()),
            "{e}"
        );
    }

    #[test]
    fn times_past_year_9999_are_none_not_a_panic() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339(far), None);
        assert!(
            rfc3339(SystemTime::UNIX_EPOCH)
                .unwrap()
                .starts_with("1970-01-01T")
        );
    }
}
