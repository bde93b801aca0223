//! AMF0 values, decoder and encoder (AMF0 §2).
//!
//! The decoder recurses for objects and arrays, bounded by [`Amf0Limits::max_depth`], and counts
//! every value and property against [`Amf0Limits::max_elements`] before storing it. Counts from
//! the wire (ECMA/strict array lengths) are never used to pre-allocate. A value behind the 0x11
//! "switch to AMF3" marker is decoded only for the scalar AMF3 types; anything else is an error.

use bytes::{BufMut, BytesMut};

use crate::error::{HexExcerpt, IngestError};

/// One AMF0 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since 1970 UTC plus the reserved time-zone field.
    Date {
        millis: f64,
        time_zone: i16,
    },
    LongString(String),
    Xml(String),
    TypedObject {
        class_name: String,
        properties: Vec<(String, Amf0Value)>,
    },
    /// Index into earlier complex values; kept opaque (not resolved).
    Reference(u16),
    Unsupported,
}

impl Amf0Value {
    /// The string content of `String`/`LongString`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) | Self::LongString(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Properties of an `Object`, `EcmaArray` or `TypedObject`.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Self::Object(p) | Self::EcmaArray(p) | Self::TypedObject { properties: p, .. } => {
                Some(p)
            }
            _ => None,
        }
    }

    /// Looks up a property by key in an object-like value.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Builds an `Object` from `(&str, value)` pairs.
    pub fn object<'a>(pairs: impl IntoIterator<Item = (&'a str, Amf0Value)>) -> Self {
        Self::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn string(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }
}

/// Decoder limits (from [`crate::IngestConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amf0Limits {
    pub max_depth: usize,
    pub max_elements: usize,
}

impl Default for Amf0Limits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_elements: 4096,
        }
    }
}

pub mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const RECORDSET: u8 = 0x0E;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

/// A cursor over an AMF0 buffer.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: Amf0Limits,
    elements: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8], limits: Amf0Limits) -> Self {
        Self {
            buf,
            pos: 0,
            limits,
            elements: 0,
        }
    }

    /// Byte offset of the next value.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Decodes the next value, or `Ok(None)` at the end of the buffer.
    pub fn next_value(&mut self) -> Result<Option<Amf0Value>, IngestError> {
        if self.is_empty() {
            return Ok(None);
        }
        self.value(0).map(Some)
    }

    fn err(&self, reason: &'static str, offset: usize) -> IngestError {
        IngestError::Amf0 {
            reason,
            offset,
            excerpt: HexExcerpt::at(self.buf, offset),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], IngestError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.err("length overflow", self.pos))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.err("truncated value", self.pos))?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, IngestError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, IngestError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, IngestError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, IngestError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, len: usize) -> Result<String, IngestError> {
        let b = self.take(len)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    fn count_element(&mut self) -> Result<(), IngestError> {
        self.elements = self.elements.saturating_add(1);
        if self.elements > self.limits.max_elements {
            return Err(IngestError::limit(
                "AMF max_elements",
                self.elements as u64,
                self.limits.max_elements as u64,
            ));
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, IngestError> {
        self.count_element()?;
        let at = self.pos;
        let m = self.u8()?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(self.f64()?),
            marker::BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            marker::STRING => {
                let len = self.u16()?;
                Amf0Value::String(self.utf8(usize::from(len))?)
            }
            marker::OBJECT => Amf0Value::Object(self.properties(depth, at)?),
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::REFERENCE => Amf0Value::Reference(self.u16()?),
            marker::ECMA_ARRAY => {
                // The count is only a hint (ffmpeg ignores it too); parse to the end marker.
                let _count_hint = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth, at)?)
            }
            marker::STRICT_ARRAY => {
                let count = self.u32()?;
                if depth >= self.limits.max_depth {
                    return Err(IngestError::limit(
                        "AMF max_depth",
                        depth as u64 + 1,
                        self.limits.max_depth as u64,
                    ));
                }
                let remaining_budget = self.limits.max_elements.saturating_sub(self.elements);
                if count as usize > remaining_budget {
                    return Err(IngestError::limit(
                        "AMF max_elements",
                        count.into(),
                        self.limits.max_elements as u64,
                    ));
                }
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            marker::DATE => {
                let millis = self.f64()?;
                let time_zone = self.u16()? as i16;
                Amf0Value::Date { millis, time_zone }
            }
            marker::LONG_STRING => {
                let len = self.u32()?;
                Amf0Value::LongString(self.utf8(len as usize)?)
            }
            marker::UNSUPPORTED => Amf0Value::Unsupported,
            marker::XML_DOCUMENT => {
                let len = self.u32()?;
                Amf0Value::Xml(self.utf8(len as usize)?)
            }
            marker::TYPED_OBJECT => {
                let len = self.u16()?;
                let class_name = self.utf8(usize::from(len))?;
                Amf0Value::TypedObject {
                    class_name,
                    properties: self.properties(depth, at)?,
                }
            }
            marker::AVMPLUS => self.amf3_scalar()?,
            marker::OBJECT_END => return Err(self.err("object-end marker outside an object", at)),
            marker::MOVIECLIP | marker::RECORDSET => {
                return Err(self.err("reserved marker (movieclip/recordset)", at))
            }
            _ => return Err(self.err("unknown marker", at)),
        })
    }

    fn properties(
        &mut self,
        depth: usize,
        at: usize,
    ) -> Result<Vec<(String, Amf0Value)>, IngestError> {
        if depth >= self.limits.max_depth {
            return Err(IngestError::limit(
                "AMF max_depth",
                depth as u64 + 1,
                self.limits.max_depth as u64,
            ));
        }
        let mut props = Vec::new();
        loop {
            let key_len = self
                .u16()
                .map_err(|_| self.err("object without end marker", at))?;
            if key_len == 0 {
                let key_end_at = self.pos;
                if self.u8()? == marker::OBJECT_END {
                    return Ok(props);
                }
                // An empty key followed by a value: legal in principle, keep it.
                self.pos = key_end_at;
                let v = self.value(depth + 1)?;
                props.push((String::new(), v));
                continue;
            }
            let key = self.utf8(usize::from(key_len))?;
            let v = self.value(depth + 1)?;
            props.push((key, v));
        }
    }

    /// Minimal AMF3: undefined, null, false, true, integer, double, inline string.
    fn amf3_scalar(&mut self) -> Result<Amf0Value, IngestError> {
        let at = self.pos;
        let m = self.u8()?;
        Ok(match m {
            0x00 => Amf0Value::Undefined,
            0x01 => Amf0Value::Null,
            0x02 => Amf0Value::Boolean(false),
            0x03 => Amf0Value::Boolean(true),
            0x04 => {
                let v = self.u29()?;
                // Sign-extend the 29-bit integer.
                let signed = ((v << 3) as i32) >> 3;
                Amf0Value::Number(f64::from(signed))
            }
            0x05 => Amf0Value::Number(self.f64()?),
            0x06 => {
                let header = self.u29()?;
                if header & 1 == 0 {
                    return Err(IngestError::Unsupported {
                        what: "AMF3 string reference".into(),
                    });
                }
                Amf0Value::String(self.utf8((header >> 1) as usize)?)
            }
            _ => {
                return Err(IngestError::Unsupported {
                    what: format!("AMF3 value with marker {m:#04x} at offset {at}"),
                });
            }
        })
    }

    fn u29(&mut self) -> Result<u32, IngestError> {
        let mut v: u32 = 0;
        for i in 0..4 {
            let b = self.u8()?;
            if i == 3 {
                return Ok((v << 8) | u32::from(b));
            }
            v = (v << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Ok(v)
    }
}

/// Decodes every value in `buf`.
pub fn decode_all(buf: &[u8], limits: Amf0Limits) -> Result<Vec<Amf0Value>, IngestError> {
    let mut d = Decoder::new(buf, limits);
    let mut out = Vec::new();
    while let Some(v) = d.next_value()? {
        out.push(v);
    }
    Ok(out)
}

/// Decodes one value from the start of `buf` and returns it with the number of bytes used.
pub fn decode_one(buf: &[u8], limits: Amf0Limits) -> Result<(Amf0Value, usize), IngestError> {
    let mut d = Decoder::new(buf, limits);
    match d.next_value()? {
        Some(v) => Ok((v, d.position())),
        None => Err(d.err("empty buffer", 0)),
    }
}

fn put_str16(out: &mut BytesMut, s: &str) {
    // Keys and short strings longer than u16 are cut at a char boundary (only our own output).
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.put_u16(end as u16);
    out.put_slice(&s.as_bytes()[..end]);
}

fn put_str32(out: &mut BytesMut, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.put_u32(len);
    out.put_slice(&s.as_bytes()[..len as usize]);
}

fn put_props(out: &mut BytesMut, props: &[(String, Amf0Value)]) {
    for (k, v) in props {
        put_str16(out, k);
        encode(v, out);
    }
    out.put_slice(&[0, 0, marker::OBJECT_END]);
}

/// Appends the encoding of `value`. A `String` longer than 65535 bytes is written as a long string.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) if s.len() > usize::from(u16::MAX) => {
            out.put_u8(marker::LONG_STRING);
            put_str32(out, s);
        }
        Amf0Value::String(s) => {
            out.put_u8(marker::STRING);
            put_str16(out, s);
        }
        Amf0Value::Object(p) => {
            out.put_u8(marker::OBJECT);
            put_props(out, p);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::EcmaArray(p) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(p.len()).unwrap_or(u32::MAX));
            put_props(out, p);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for v in items {
                encode(v, out);
            }
        }
        Amf0Value::Date { millis, time_zone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*time_zone);
        }
        Amf0Value::LongString(s) => {
            out.put_u8(marker::LONG_STRING);
            put_str32(out, s);
        }
        Amf0Value::Xml(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            put_str32(out, s);
        }
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_str16(out, class_name);
            put_props(out, properties);
        }
        Amf0Value::Reference(i) => {
            out.put_u8(marker::REFERENCE);
            out.put_u16(*i);
        }
        Amf0Value::Unsupported => out.put_u8(marker::UNSUPPORTED),
    }
}

/// Encodes a sequence of values.
pub fn encode_all<'a>(values: impl IntoIterator<Item = &'a Amf0Value>, out: &mut BytesMut) {
    for v in values {
        encode(v, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(bytes: &[u8]) -> Result<Vec<Amf0Value>, IngestError> {
        decode_all(bytes, Amf0Limits::default())
    }

    #[test]
    fn decodes_table() {
        let cases: Vec<(&[u8], Amf0Value)> = vec![
            (
                &[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0],
                Amf0Value::Number(1.0),
            ),
            (&[0x01, 0x02], Amf0Value::Boolean(true)),
            (&[0x01, 0x00], Amf0Value::Boolean(false)),
            (&[0x02, 0x00, 0x02, b'h', b'i'], Amf0Value::string("hi")),
            (&[0x05], Amf0Value::Null),
            (&[0x06], Amf0Value::Undefined),
            (&[0x07, 0x00, 0x05], Amf0Value::Reference(5)),
            (&[0x0d], Amf0Value::Unsupported),
            (
                &[0x03, 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09],
                Amf0Value::object([("a", Amf0Value::Null)]),
            ),
            (
                &[0x08, 0, 0, 0, 9, 0x00, 0x00, 0x09],
                Amf0Value::EcmaArray(vec![]),
            ),
            (
                &[0x0a, 0, 0, 0, 2, 0x05, 0x06],
                Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Undefined]),
            ),
            (
                &[0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xc4],
                Amf0Value::Date {
                    millis: 0.0,
                    time_zone: -60,
                },
            ),
            (&[0x0c, 0, 0, 0, 1, b'x'], Amf0Value::LongString("x".into())),
            (&[0x0f, 0, 0, 0, 1, b'<'], Amf0Value::Xml("<".into())),
            (
                &[0x10, 0, 1, b'C', 0x00, 0x01, b'k', 0x05, 0, 0, 9],
                Amf0Value::TypedObject {
                    class_name: "C".into(),
                    properties: vec![("k".into(), Amf0Value::Null)],
                },
            ),
            // AMF3 switch: integer 5, true, inline string "ab".
            (&[0x11, 0x04, 0x05], Amf0Value::Number(5.0)),
            (&[0x11, 0x03], Amf0Value::Boolean(true)),
            (&[0x11, 0x06, 0x05, b'a', b'b'], Amf0Value::string("ab")),
        ];
        for (bytes, want) in cases {
            assert_eq!(dec(bytes).unwrap(), vec![want], "input {bytes:02x?}");
        }
    }

    #[test]
    fn rejects_table() {
        let cases: &[&[u8]] = &[
            &[0x00, 0x3f],                   // truncated number
            &[0x02, 0x00, 0x05, b'a'],       // truncated string
            &[0x03, 0x00, 0x01, b'a', 0x05], // object without end
            &[0x09],                         // stray object end
            &[0x04],                         // movieclip
            &[0x0e],                         // recordset
            &[0x12],                         // unknown
            &[0x0a, 0xff, 0xff, 0xff, 0xff], // huge strict array count
            &[0x0c, 0xff, 0xff, 0xff, 0xff], // huge long string
            &[0x11, 0x0a],                   // AMF3 object: unsupported
            &[0x11, 0x06, 0x02],             // AMF3 string reference
        ];
        for bytes in cases {
            assert!(dec(bytes).is_err(), "input {bytes:02x?} should fail");
        }
    }

    #[test]
    fn element_limit_applies_across_nesting() {
        let mut out = BytesMut::new();
        let v = Amf0Value::StrictArray(vec![Amf0Value::Null; 10]);
        encode(&v, &mut out);
        assert!(decode_all(
            &out,
            Amf0Limits {
                max_depth: 4,
                max_elements: 10
            }
        )
        .is_err());
        assert!(decode_all(
            &out,
            Amf0Limits {
                max_depth: 4,
                max_elements: 11
            }
        )
        .is_ok());
    }

    fn nested(depth: usize, object: bool) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..depth {
            if object {
                v.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
            } else {
                v.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
            }
        }
        v.push(0x05);
        if object {
            for _ in 0..depth {
                v.extend_from_slice(&[0, 0, 9]);
            }
        }
        v
    }

    #[test]
    fn deep_nesting_is_rejected_on_a_small_stack() {
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let limits = Amf0Limits::default();
                for object in [true, false] {
                    for depth in [1_000, 100_000, 1_000_000] {
                        let input = nested(depth, object);
                        let err = decode_all(&input, limits).unwrap_err();
                        assert!(matches!(err, IngestError::LimitExceeded { .. }), "{err}");
                    }
                    assert!(decode_all(&nested(limits.max_depth, object), limits).is_ok());
                    assert!(decode_all(&nested(limits.max_depth + 1, object), limits).is_err());
                }
            })
            .unwrap();
        handle.join().unwrap();
    }

    fn arb_string() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 äöü€_@.]{0,20}"
    }

    fn arb_value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            prop::num::f64::NORMAL.prop_map(Amf0Value::Number),
            Just(Amf0Value::Number(0.0)),
            any::<bool>().prop_map(Amf0Value::Boolean),
            arb_string().prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
            (prop::num::f64::NORMAL, any::<i16>())
                .prop_map(|(millis, time_zone)| Amf0Value::Date { millis, time_zone }),
            arb_string().prop_map(Amf0Value::LongString),
            arb_string().prop_map(Amf0Value::Xml),
            any::<u16>().prop_map(Amf0Value::Reference),
            Just(Amf0Value::Unsupported),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let props = prop::collection::vec(("[a-z]{1,8}", inner.clone()), 0..6);
            prop_oneof![
                props.clone().prop_map(Amf0Value::Object),
                props.clone().prop_map(Amf0Value::EcmaArray),
                prop::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
                ("[A-Za-z]{0,8}", props).prop_map(|(class_name, properties)| {
                    Amf0Value::TypedObject {
                        class_name,
                        properties,
                    }
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(values in prop::collection::vec(arb_value(), 0..5)) {
            let mut out = BytesMut::new();
            encode_all(&values, &mut out);
            let limits = Amf0Limits { max_depth: 32, max_elements: 100_000 };
            prop_assert_eq!(decode_all(&out, limits).unwrap(), values);
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = dec(&bytes);
        }
    }
}
