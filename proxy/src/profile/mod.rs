//! Partition profiles as data. A profile file (`profiles/NAME.toml`) names a shape —
//! split, isolate, two-vs-two, bridge, one-way, majorities-ring, flaky, random-halves,
//! wan (regions with a delay between them, see [`wan`]) —
//! and is resolved against a topology's nodes into directed [`LinkRule`]s when it is
//! applied. Targets such as `leader` are bindings supplied at apply time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fault::{Degradation, Fault, LinkRule};

include!(concat!(env!("OUT_DIR"), "/builtin_profiles.rs"));

/// Names bound at apply time, e.g. `leader = "etcd2"`, `target = "etcd3"`.
pub type Bindings = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Split,
    Isolate,
    TwoVsTwo,
    Bridge,
    OneWay,
    MajoritiesRing,
    Flaky,
    RandomHalves,
    Wan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CutFault {
    #[default]
    Hold,
    Reset,
    Blackhole,
}

/// Where external clients (identity `client`) sit during a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClientPlacement {
    /// Clients reach every node.
    #[default]
    All,
    /// Clients are on the majority (first) side.
    Majority,
    /// Clients are on the minority (last) side.
    Minority,
    /// Clients reach no node.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OneWayDirection {
    /// The target's outgoing bytes are cut: it hears the others, they don't hear it.
    #[default]
    Outbound,
    /// Bytes towards the target are cut.
    Inbound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    pub kind: Kind,
    #[serde(default)]
    pub fault: CutFault,
    /// Limit the cut to these endpoints (e.g. Kafka `replication`); empty = all.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Node name or binding name (`leader`); a `target` binding overrides it.
    pub target: Option<String>,
    /// split: size of the minority side (default: the largest minority).
    pub minority: Option<usize>,
    /// split: explicit groups of node names; wan: the regions, in order (r1, r2, ...).
    pub groups: Option<Vec<Vec<String>>>,
    /// wan: the number of regions nodes are spread over in name order (default 3).
    pub regions: Option<usize>,
    /// wan: one-way delay of particular region pairs, overriding `[degrade]`.
    #[serde(default, rename = "pair", skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<wan::RegionPair>,
    #[serde(default)]
    pub client: ClientPlacement,
    #[serde(default)]
    pub direction: OneWayDirection,
    /// random-halves: seed of the shuffle.
    pub seed: Option<u64>,
    /// flaky: the degradation applied to every link between nodes (or the target's);
    /// wan: the delay and jitter between two regions (`--set delay=20ms` overrides it).
    pub degrade: Option<Degradation>,
}

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: {field} = {value}: {reason}")]
    Invalid {
        origin: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("unknown profile {name:?} (available: {available})")]
    Unknown { name: String, available: String },
}

/// Resolved profile: rules plus a human summary of the sides.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub rules: Vec<LinkRule>,
    pub summary: String,
}

impl Profile {
    pub fn parse(text: &str, name: &str, origin: &str) -> Result<Profile, ProfileError> {
        let mut profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        profile.name = name.to_string();
        profile.check_fields(origin)?;
        Ok(profile)
    }

    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        Profile::parse(&text, &name, &path.display().to_string())
    }

    /// Fields that make no sense for the kind are errors, not silently ignored.
    fn check_fields(&self, origin: &str) -> Result<(), ProfileError> {
        let invalid = |field: &'static str, value: String, reason: &str| ProfileError::Invalid {
            origin: origin.to_string(),
            field,
            value,
            reason: reason.to_string(),
        };
        if let Some(minority) = self.minority
            && self.kind != Kind::Split
        {
            return Err(invalid(
                "minority",
                minority.to_string(),
                "only used by kind = \"split\"",
            ));
        }
        if self.groups.is_some() && !matches!(self.kind, Kind::Split | Kind::Wan) {
            return Err(invalid(
                "groups",
                "[...]".into(),
                "only used by kind = \"split\" and \"wan\"",
            ));
        }
        if self.kind != Kind::Wan && (self.regions.is_some() || !self.pairs.is_empty()) {
            return Err(invalid(
                "regions",
                "set".into(),
                "regions and [[pair]] are only used by kind = \"wan\"",
            ));
        }
        if self.kind == Kind::Wan {
            wan::check_fields(self)
                .map_err(|(field, value, reason)| invalid(field, value, &reason))?;
        }
        if let Some(seed) = self.seed
            && self.kind != Kind::RandomHalves
        {
            return Err(invalid(
                "seed",
                seed.to_string(),
                "only used by kind = \"random-halves\"",
            ));
        }
        match (&self.degrade, self.kind) {
            (None, Kind::Flaky) => {
                return Err(invalid(
                    "degrade",
                    "missing".into(),
                    "kind = \"flaky\" needs a [degrade] table",
                ));
            }
            (Some(_), kind) if !matches!(kind, Kind::Flaky | Kind::Wan) => {
                return Err(invalid(
                    "degrade",
                    "[degrade]".into(),
                    "only used by kind = \"flaky\" and \"wan\"",
                ));
            }
            _ => {}
        }
        if self.minority == Some(0) {
            return Err(invalid(
                "minority",
                "0".into(),
                "the minority needs at least one node",
            ));
        }
        Ok(())
    }

    /// Whether `name` is a value the profile takes at apply time (`--set delay=20ms`)
    /// rather than a node or a role: such bindings are passed through unresolved.
    pub fn takes_parameter(&self, name: &str) -> bool {
        self.kind == Kind::Wan && wan::is_parameter(name)
    }

    fn fault(&self) -> Fault {
        match (&self.degrade, self.fault) {
            (Some(d), _) => Fault::Degrade(d.clone()),
            (None, CutFault::Hold) => Fault::Hold,
            (None, CutFault::Reset) => Fault::Reset,
            (None, CutFault::Blackhole) => Fault::Blackhole,
        }
    }
}

/// The built-in profiles plus, optionally, those of a user directory (which win).
#[derive(Debug, Clone, Default)]
pub struct ProfileLibrary {
    profiles: BTreeMap<String, Profile>,
}

impl ProfileLibrary {
    pub fn builtin() -> ProfileLibrary {
        let mut library = ProfileLibrary::default();
        for (name, text) in BUILTIN_PROFILES {
            let profile = Profile::parse(text, name, &format!("profiles/{name}.toml"))
                .unwrap_or_else(|e| panic!("built-in profile is invalid: {e}"));
            library.profiles.insert(name.to_string(), profile);
        }
        library
    }

    pub fn with_dir(mut self, dir: &Path) -> Result<ProfileLibrary, ProfileError> {
        let entries = std::fs::read_dir(dir).map_err(|source| ProfileError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let profile = Profile::load(&path)?;
                self.profiles.insert(profile.name.clone(), profile);
            }
        }
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_string(),
                available: self.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    pub fn list(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values()
    }
}

mod resolve;
pub mod wan;

pub use resolve::validate_groups;

#[cfg(test)]
mod tests;
