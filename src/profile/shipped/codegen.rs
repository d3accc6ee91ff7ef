//! Writes a serializable value as the Rust expression that builds it: how the shipped
//! profiles' YAML becomes `compiled.rs`. Test-only: the test that compares the generated
//! text with `compiled.rs` is also the one that rewrites it.
//!
//! Names come from serde: struct and enum names as declared, fields and variants as
//! written in YAML (kebab-case), turned back into Rust's spelling. Types of a layer's
//! section are named through the layer's module (`filesystem::MountEntry`).

use std::fmt::{self, Write as _};

use serde::ser::{self, Serialize};

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Types named without a module: the profile's own and the shared value types.
const UNQUALIFIED: &[&str] = &["ProfileFile", "Sections", "Spanned", "Loc", "Requirement"];

/// Fields whose YAML key is not their Rust name in kebab-case: (type, key, field).
const RENAMED_FIELDS: &[(&str, &str, &str)] = &[("rlimits::Section", "as", "address_space")];

/// The Rust expression for `value`, its inner lines indented for nesting at `depth`.
pub fn expression<T: Serialize>(value: &T, depth: usize) -> Result<String, Error> {
    value.serialize(Rust { layer: None, depth })
}

#[derive(Clone, Copy)]
struct Rust<'a> {
    /// The layer section being written, which qualifies its types.
    layer: Option<&'a str>,
    depth: usize,
}

impl<'a> Rust<'a> {
    fn type_path(&self, name: &str) -> String {
        match self.layer {
            Some(layer) if !UNQUALIFIED.contains(&name) => format!("{layer}::{name}"),
            _ => name.to_string(),
        }
    }

    fn inner(&self) -> Rust<'a> {
        Rust {
            depth: self.depth + 1,
            ..*self
        }
    }

    fn indent(&self) -> String {
        "    ".repeat(self.depth + 1)
    }
}

fn snake(key: &str) -> String {
    key.replace('-', "_")
}

fn camel(variant: &str) -> String {
    variant
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A list of items between `open` and `close`: on one line when short, else one per line.
fn block(open: &str, items: &[String], close: &str, at: &Rust) -> String {
    if items.is_empty() {
        return format!("{open}{close}");
    }
    let one_line = items.join(", ");
    let pad = if open.ends_with('{') { " " } else { "" };
    if !one_line.contains('\n') && at.indent().len() + open.len() + one_line.len() < 90 {
        return format!("{open}{pad}{one_line}{pad}{close}");
    }
    let mut s = format!("{open}\n");
    for item in items {
        let _ = writeln!(s, "{}{item},", at.indent());
    }
    s + &"    ".repeat(at.depth) + close
}

pub struct Seq<'a> {
    at: Rust<'a>,
    open: String,
    close: &'static str,
    items: Vec<String>,
}

impl<'a> Seq<'a> {
    fn push<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        self.items.push(v.serialize(self.at.inner())?);
        Ok(())
    }

    fn done(self) -> String {
        block(&self.open, &self.items, self.close, &self.at)
    }
}

pub struct Struct<'a> {
    at: Rust<'a>,
    path: String,
    fields: Vec<String>,
}

pub struct Map<'a> {
    at: Rust<'a>,
    key: Option<String>,
    entries: Vec<String>,
}

impl<'a> ser::Serializer for Rust<'a> {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Struct<'a>;
    type SerializeStructVariant = Struct<'a>;

    fn serialize_bool(self, v: bool) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, Error> {
        Ok(format!("{v}i8"))
    }
    fn serialize_i16(self, v: i16) -> Result<String, Error> {
        Ok(format!("{v}i16"))
    }
    fn serialize_i32(self, v: i32) -> Result<String, Error> {
        Ok(format!("{v}i32"))
    }
    fn serialize_i64(self, v: i64) -> Result<String, Error> {
        Ok(format!("{v}i64"))
    }
    fn serialize_u8(self, v: u8) -> Result<String, Error> {
        Ok(format!("{v}u8"))
    }
    fn serialize_u16(self, v: u16) -> Result<String, Error> {
        Ok(format!("{v}u16"))
    }
    fn serialize_u32(self, v: u32) -> Result<String, Error> {
        Ok(format!("{v}u32"))
    }
    fn serialize_u64(self, v: u64) -> Result<String, Error> {
        Ok(format!("{v}u64"))
    }
    fn serialize_f32(self, v: f32) -> Result<String, Error> {
        Ok(format!("{v:?}f32"))
    }
    fn serialize_f64(self, v: f64) -> Result<String, Error> {
        Ok(format!("{v:?}f64"))
    }
    fn serialize_char(self, v: char) -> Result<String, Error> {
        Ok(format!("{v:?}"))
    }
    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(format!("{v:?}.into()"))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<String, Error> {
        Ok(format!("{v:?}.to_vec()"))
    }
    fn serialize_none(self) -> Result<String, Error> {
        Ok("None".into())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<String, Error> {
        Ok(format!("Some({})", v.serialize(self)?))
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Ok("()".into())
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<String, Error> {
        Ok(self.type_path(name))
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(format!("{}::{}", self.type_path(name), camel(variant)))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<String, Error> {
        Ok(format!("{}({})", self.type_path(name), v.serialize(self)?))
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<String, Error> {
        Ok(format!(
            "{}::{}({})",
            self.type_path(name),
            camel(variant),
            v.serialize(self)?
        ))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>, Error> {
        Ok(Seq {
            at: self,
            open: "vec![".into(),
            close: "]",
            items: Vec::new(),
        })
    }
    fn serialize_tuple(self, _len: usize) -> Result<Seq<'a>, Error> {
        Ok(Seq {
            at: self,
            open: "(".into(),
            close: ")",
            items: Vec::new(),
        })
    }
    fn serialize_tuple_struct(self, name: &'static str, _len: usize) -> Result<Seq<'a>, Error> {
        Ok(Seq {
            at: self,
            open: format!("{}(", self.type_path(name)),
            close: ")",
            items: Vec::new(),
        })
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Seq<'a>, Error> {
        Ok(Seq {
            at: self,
            open: format!("{}::{}(", self.type_path(name), camel(variant)),
            close: ")",
            items: Vec::new(),
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Map<'a>, Error> {
        Ok(Map {
            at: self,
            key: None,
            entries: Vec::new(),
        })
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Struct<'a>, Error> {
        Ok(Struct {
            at: self,
            path: self.type_path(name),
            fields: Vec::new(),
        })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Struct<'a>, Error> {
        Ok(Struct {
            at: self,
            path: format!("{}::{}", self.type_path(name), camel(variant)),
            fields: Vec::new(),
        })
    }
}

/// The sequence-like traits all collect items the same way.
macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = String;
            type Error = Error;
            fn $method<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
                self.push(v)
            }
            fn end(self) -> Result<String, Error> {
                Ok(self.done())
            }
        }
    )*};
}

seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Map<'_> {
    type Ok = String;
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> Result<(), Error> {
        self.key = Some(k.serialize(self.at.inner())?);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error("map value without a key".into()))?;
        let value = v.serialize(self.at.inner())?;
        self.entries.push(format!("({key}, {value})"));
        Ok(())
    }
    fn end(self) -> Result<String, Error> {
        Ok(block("[", &self.entries, "]", &self.at) + ".into_iter().collect()")
    }
}

impl Struct<'_> {
    fn field<T: ?Sized + Serialize>(&mut self, key: &'static str, v: &T) -> Result<(), Error> {
        let mut at = self.at.inner();
        if self.path == "Sections" {
            // Each field of `layers:` is a layer, whose module names its section's types.
            at.layer = Some(key);
        }
        let name = RENAMED_FIELDS
            .iter()
            .find(|(ty, k, _)| *ty == self.path && *k == key)
            .map(|(_, _, field)| field.to_string())
            .unwrap_or_else(|| snake(key));
        self.fields.push(format!("{name}: {}", v.serialize(at)?));
        Ok(())
    }

    fn done(self) -> String {
        block(&format!("{} {{", self.path), &self.fields, "}", &self.at)
    }
}

/// Structs and struct variants are written alike.
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Struct<'_> {
            type Ok = String;
            type Error = Error;
            fn serialize_field<T: ?Sized + Serialize>(
                &mut self,
                key: &'static str,
                v: &T,
            ) -> Result<(), Error> {
                self.field(key, v)
            }
            fn end(self) -> Result<String, Error> {
                Ok(self.done())
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);
