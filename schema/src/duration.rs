//! Durations in configuration files: human text (`90s`, `5m`, `1h 30m`, `7d`) or whole seconds.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as `5m` or as whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    /// Whether it is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration like \"90s\", \"5m\", \"1h\" or whole seconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
        Ok(HumanDuration::secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
        u64::try_from(v)
            .map(HumanDuration::secs)
            .map_err(|_| E::custom(format!("{v} is negative; a duration is >= 0")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
        humantime::parse_duration(v)
            .map(HumanDuration)
            .map_err(|e| E::custom(format!("`{v}` is not a duration like \"5m\" ({e})")))
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: text such as \"90s\", \"5m\", \"1h 30m\", \"7d\", or whole seconds.",
            "anyOf": [
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*[a-zA-Z]+(\\s*[0-9]+\\s*[a-zA-Z]+)*\\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct T {
        d: HumanDuration,
    }

    #[test]
    fn text_and_seconds() {
        let t: T = toml::from_str("d = \"1h 30m\"").unwrap();
        assert_eq!(t.d.0, Duration::from_secs(5400));
        let t: T = toml::from_str("d = 90").unwrap();
        assert_eq!(t.d.0, Duration::from_secs(90));
        assert_eq!(toml::to_string(&t).unwrap().trim(), "d = \"1m 30s\"");
        let e = toml::from_str::<T>("d = \"soon\"").unwrap_err().to_string();
        assert!(e.contains("`soon` is not a duration"), "{e}");
        assert!(toml::from_str::<T>("d = -1").is_err());
    }
}
