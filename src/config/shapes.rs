//! Custom YAML shapes of the schema: sections that can be switched `off`, ordered name maps,
//! endpoint items (a URL or `{url, weight}`) and the outcome words of `retry.on`/`failure_on`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// `- http://host:port` or `- { url: ..., weight: N }`.
#[derive(Debug, Default)]
pub(crate) struct EndpointFile {
    pub(crate) url: String,
    pub(crate) weight: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointMap {
    url: String,
    weight: Option<u32>,
}

/// A word of `retry.on` / `failure_on`, or a bare status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutcomeWord {
    ConnectFailure,
    Reset,
    Timeout,
    Class(u16),
    GatewayError,
    Retriable4xx,
    Status(u16),
}

/// A section that can also be switched off (`off`/`false`) or on with defaults (`on`/`true`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Toggle<T> {
    Off,
    On(T),
}

/// A mapping kept in file order (upstreams are listed in the order the file names them).
#[derive(Debug, Default)]
pub(crate) struct Ordered<T>(pub(crate) Vec<(String, T)>);

// === impl OutcomeWord ===

impl OutcomeWord {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "connect-failure" => Self::ConnectFailure,
            "reset" => Self::Reset,
            "timeout" | "per-try-timeout" => Self::Timeout,
            "5xx" => Self::Class(5),
            "4xx" => Self::Class(4),
            "gateway-error" => Self::GatewayError,
            "retriable-4xx" => Self::Retriable4xx,
            _ => match text.parse::<u16>() {
                Ok(code) if (100..600).contains(&code) => Self::Status(code),
                _ => return None,
            },
        })
    }
}

impl<'de> Deserialize<'de> for OutcomeWord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = OutcomeWord;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an outcome")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OutcomeWord, E> {
                OutcomeWord::parse(v.trim()).ok_or_else(|| {
                    E::custom(format!(
                        "expected an outcome like \"connect-failure\", \"5xx\" or 503, got \"{v}\""
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OutcomeWord, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OutcomeWord, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

// === impl EndpointFile ===

impl<'de> Deserialize<'de> for EndpointFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EndpointFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an endpoint URL or { url, weight }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EndpointFile, E> {
                Ok(EndpointFile {
                    url: v.to_string(),
                    weight: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EndpointFile, A::Error> {
                let m = EndpointMap::deserialize(MapAccessDeserializer::new(map))?;
                Ok(EndpointFile {
                    url: m.url,
                    weight: m.weight,
                })
            }
        }
        d.deserialize_any(V)
    }
}

// === impl Toggle ===

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = Toggle<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or \"off\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Toggle<T>, E> {
                Ok(if v {
                    Toggle::On(T::default())
                } else {
                    Toggle::Off
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Toggle<T>, E> {
                match v.trim() {
                    "off" => Ok(Toggle::Off),
                    "on" => Ok(Toggle::On(T::default())),
                    _ => T::deserialize(de::value::StrDeserializer::new(v)).map(Toggle::On),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Toggle<T>, E> {
                T::deserialize(de::value::U64Deserializer::new(v)).map(Toggle::On)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Toggle<T>, E> {
                T::deserialize(de::value::I64Deserializer::new(v)).map(Toggle::On)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Toggle<T>, E> {
                T::deserialize(de::value::F64Deserializer::new(v)).map(Toggle::On)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Toggle<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Toggle::On)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

// === impl Ordered ===

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, T>()? {
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Ordered<T>, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}
