//! The event time of a JSON object, read from one of its fields in one pass
//! over the object's bytes: no map of its fields, no copy of its values.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The event time in field `field` of a JSON object: milliseconds as a number
/// or a decimal string. `None` when `value` is not one JSON object, or its
/// field is missing or holds something else (of a field given twice, the
/// last counts).
///
/// ```
/// use weir_streaming::event_time::json_time;
///
/// assert_eq!(json_time(br#"{"id": 1, "t": 1700000000123}"#, "t"), Some(1_700_000_000_123));
/// assert_eq!(json_time(br#"{"t": "42"} {"t": 43}"#, "t"), None);
/// ```
pub fn json_time(value: &[u8], field: &str) -> Option<u64> {
    let mut deserializer = serde_json::Deserializer::from_slice(value);
    let time = deserializer.deserialize_map(Object { field }).ok()?;
    deserializer.end().ok()?;
    time
}

/// Visits an object for the time in `field`.
struct Object<'f> {
    field: &'f str,
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut time = None;
        while let Some(wanted) = map.next_key_seed(Key(self.field))? {
            if wanted {
                time = map.next_value_seed(Time)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(time)
    }
}

/// A key of the object: whether it is the time's field.
struct Key<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// The time's value: milliseconds, or `None` when it holds anything else.
struct Time;

impl<'de> DeserializeSeed<'de> for Time {
    type Value = Option<u64>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Time {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("milliseconds")
    }

    fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Option<u64>, E> {
        Ok(Some(ms))
    }

    fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Option<u64>, E> {
        Ok(u64::try_from(ms).ok())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Option<u64>, E> {
        Ok(text.parse().ok())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Option<u64>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_is_a_number_or_a_decimal_string() {
        assert_eq!(
            json_time(br#"{"t": 1700000000123, "x": 1}"#, "t"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            json_time(br#"{"t": "1700000000123"}"#, "t"),
            Some(1_700_000_000_123)
        );
        assert_eq!(json_time(br#"{"t": "soon"}"#, "t"), None);
        assert_eq!(json_time(b"not json", "t"), None);
    }

    #[test]
    fn only_the_field_of_the_top_object_counts() {
        let nested = br#"{"a": {"t": 5}, "s": "\"t\": 6", "l": [{"t": 7}], "t": 8}"#;
        assert_eq!(json_time(nested, "t"), Some(8));
        assert_eq!(json_time(br#"{"a": {"t": 5}}"#, "t"), None);
        // an escaped key is still the field
        assert_eq!(json_time(br#"{"\u0074": 9}"#, "t"), Some(9));
        assert_eq!(json_time(br#"{"t": 1, "t": 2}"#, "t"), Some(2));
    }

    #[test]
    fn anything_but_whole_milliseconds_is_no_time() {
        for value in [
            r#"{"t": -1}"#,
            r#"{"t": 1.5}"#,
            r#"{"t": null}"#,
            r#"{"t": true}"#,
            r#"{"t": [1]}"#,
            r#"{"t": {"ms": 1}}"#,
            r#"{"t": 1"#,
            r#"{"t": 1} x"#,
            r#"[1]"#,
        ] {
            assert_eq!(json_time(value.as_bytes(), "t"), None, "{value}");
        }
    }
}
