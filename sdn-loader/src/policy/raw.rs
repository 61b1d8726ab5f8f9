//! The policy file as written: serde structs with every value still unchecked text or number,
//! so that validation can report each problem with its place in the file.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A whole policy document (TOML or JSON).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Document {
    #[serde(default)]
    pub(crate) organisation: Vec<RawOrganisation>,
    #[serde(default)]
    pub(crate) port_alias: Vec<RawPortAlias>,
    #[serde(default)]
    pub(crate) service: Vec<RawService>,
    #[serde(default)]
    pub(crate) client: Vec<RawClient>,
    #[serde(default)]
    pub(crate) agreement: Vec<RawAgreement>,
    #[serde(default)]
    pub(crate) infrastructure: Vec<RawInfra>,
}

/// `[[organisation]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrganisation {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// `[[port_alias]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPortAlias {
    pub(crate) name: String,
    pub(crate) protocol: String,
    pub(crate) ports: PortList,
}

/// `[[service]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub(crate) id: String,
    pub(crate) organisation: String,
    pub(crate) name: String,
    /// Missing means empty, which validation reports.
    #[serde(default)]
    pub(crate) endpoints: Vec<RawEndpoint>,
}

/// One element of `endpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoint {
    pub(crate) address: String,
    pub(crate) protocol: String,
    pub(crate) ports: Option<PortList>,
}

/// `[[client]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClient {
    pub(crate) id: String,
    pub(crate) organisation: String,
    /// Missing means empty, which validation reports.
    #[serde(default)]
    pub(crate) prefixes: Vec<String>,
}

/// `[[agreement]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgreement {
    /// Wider than `u32` so that an out-of-range id is reported with its place.
    pub(crate) id: i64,
    pub(crate) client: String,
    pub(crate) service: String,
    pub(crate) state: String,
    pub(crate) expires: Option<DateText>,
    /// Wider than the VLAN range so that a bad VLAN is reported with its place.
    pub(crate) vlan: Option<i64>,
}

/// `[[infrastructure]]` (see docs/semantics.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInfra {
    pub(crate) prefix: String,
    /// Missing means `any`.
    pub(crate) protocol: Option<String>,
    pub(crate) ports: Option<PortList>,
}

/// A `ports` value: one item or a list of items, each a string (`"443"`, `"8000-8100"`, an
/// alias name) or, leniently, a bare integer (kept as its decimal text).
#[derive(Debug, Default)]
pub(crate) struct PortList(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for PortList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;

        impl<'de> Visitor<'de> for ListVisitor {
            type Value = PortList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a port (\"443\"), a port range (\"8000-8100\"), an alias name, or a list of these",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortList, E> {
                Ok(PortList(vec![v.to_owned()]))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortList, E> {
                Ok(PortList(vec![v.to_string()]))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortList, E> {
                Ok(PortList(vec![v.to_string()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PortList, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(PortItem(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(PortList(items))
            }
        }

        deserializer.deserialize_any(ListVisitor)
    }
}

/// One item of a port list.
struct PortItem(String);

impl<'de> Deserialize<'de> for PortItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;

        impl Visitor<'_> for ItemVisitor {
            type Value = PortItem;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (\"443\"), a port range (\"8000-8100\") or an alias name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortItem, E> {
                Ok(PortItem(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortItem, E> {
                Ok(PortItem(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortItem, E> {
                Ok(PortItem(v.to_string()))
            }
        }

        deserializer.deserialize_any(ItemVisitor)
    }
}

/// An expiry date as written: a string `"2030-01-01"`, or (TOML only) a bare local date
/// `2030-01-01`, kept as its text for validation.
#[derive(Debug)]
pub(crate) struct DateText(pub(crate) String);

impl<'de> Deserialize<'de> for DateText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;

        impl<'de> Visitor<'de> for DateVisitor {
            type Value = DateText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date \"YYYY-MM-DD\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<DateText, E> {
                Ok(DateText(v.to_owned()))
            }

            // The toml crate hands its date-time values to visitors as a one-entry map.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DateText, A::Error> {
                let datetime =
                    toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(DateText(datetime.to_string()))
            }
        }

        deserializer.deserialize_any(DateVisitor)
    }
}
