//! What a Kafka lab runs on and is named by: the Java binary, the directory of Kafka
//! jars that scripts/setup.d/30-kafka.sh fetches from Maven Central, and a fresh
//! cluster id for formatting storage.

use std::path::{Path, PathBuf};

use crate::lab::LabError;

/// `$JAVA_HOME/bin/java`, else `java` on PATH; Java 17 or newer.
pub fn find_java() -> Result<PathBuf, LabError> {
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        candidates.push(PathBuf::from(home).join("bin/java"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("java")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::Spawn {
            program: "java".into(),
            error: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no java in $JAVA_HOME/bin or PATH; Java 17 is required",
            ),
        })
}

/// The version in the name of the broker jar (`kafka_2.13-3.9.2.jar`) in `libs`.
pub fn broker_jar_version(libs: &Path) -> Option<String> {
    std::fs::read_dir(libs).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        let version = name.strip_prefix("kafka_2.13-")?.strip_suffix(".jar")?;
        // Skip classifier jars such as `kafka_2.13-4.4.0-test.jar`.
        (!version.contains('-')).then(|| version.to_string())
    })
}

/// The directory with the Kafka jars, checked to contain the broker jar.
pub fn locate_libs(explicit: Option<&Path>) -> Result<PathBuf, LabError> {
    let dir = match explicit {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os("RIFT_KAFKA_LIBS") {
            Some(d) => PathBuf::from(d),
            None => {
                let cwd = PathBuf::from(".rift/kafka-libs");
                if cwd.is_dir() {
                    cwd
                } else {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.rift/kafka-libs")
                }
            }
        },
    };
    let has_broker = std::fs::read_dir(&dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.starts_with("kafka_2.13-") && name.ends_with(".jar")
            })
        })
        .unwrap_or(false);
    if !has_broker {
        return Err(LabError::Config {
            field: "RIFT_KAFKA_LIBS".into(),
            value: dir.display().to_string(),
            reason: "no kafka_2.13-*.jar there; run scripts/setup.sh (scripts/setup.d/30-kafka.sh)"
                .into(),
        });
    }
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// A random cluster id in Kafka's format: 16 bytes, URL-safe base64 without padding.
pub fn random_cluster_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    // Kafka reserves the all-zero id and ids starting with '-' are awkward on a
    // command line; the top bits of the first byte pick the first character.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    base64_url(&bytes)
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_kafka_shaped() {
        let id = random_cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(!id.starts_with('-'));
        assert_eq!(base64_url(b"Man"), "TWFu");
        assert_eq!(base64_url(b"Ma"), "TWE");
    }

    #[test]
    fn missing_jars_name_the_setup_script() {
        let err = locate_libs(Some(Path::new("/nonexistent/kafka-libs"))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/kafka-libs"), "{text}");
        assert!(text.contains("scripts/setup.sh"), "{text}");
    }
}
