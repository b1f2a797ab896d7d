//! JSON read without allocating: [`Skip`] passes over any value, [`Str`] borrows a string
//! from the text, and [`object!`] reads an object member by member into the fields it names.
//! For the HTTP client's judge, the seed JSON protocol's agents and the router's JSON shell,
//! which read a text per message.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Any JSON value, skipped. Nested arrays and objects are walked on the stack, as far as
/// serde_json's depth limit (128) lets them: serde_json's own skip (`IgnoredAny`, which serde's
/// derive uses for members a struct does not name) keeps its nesting in a scratch vector,
/// allocated per document once skipped members nest two deep: once per response of a real
/// agent, whose answers nest (parts, history, artifacts). Strings without escapes are
/// borrowed, not copied.
pub(crate) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skip, D::Error> {
        Skip::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// A JSON string, borrowed from the body unless it has escapes.
pub(crate) struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

impl Str<'_> {
    /// The string.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A JSON object read member by member into the named fields (each an `Option`: absent or
/// null is `None`); every other member is skipped with [`Skip`], never with `IgnoredAny`.
macro_rules! object {
    ($(#[$doc:meta])* struct $name:ident<$a:lifetime> { $($field:ident: $ty:ty = $key:literal,)* }) => {
        $(#[$doc])*
        struct $name<$a> {
            $($field: Option<$ty>,)*
            _body: ::std::marker::PhantomData<&$a ()>,
        }

        impl<'de: $a, $a> ::serde::Deserialize<'de> for $name<$a> {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V<$a>(::std::marker::PhantomData<&$a ()>);
                impl<'de: $a, $a> ::serde::de::Visitor<'de> for V<$a> {
                    type Value = $name<$a>;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("an object (", stringify!($name), ")"))
                    }
                    fn visit_map<M: ::serde::de::MapAccess<'de>>(
                        self,
                        mut map: M,
                    ) -> Result<Self::Value, M::Error> {
                        $(let mut $field = None;)*
                        while let Some(key) = map.next_key::<$crate::shape::Str<'de>>()? {
                            match key.as_str() {
                                $($key => $field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<$crate::shape::Skip>()?;
                                }
                            }
                        }
                        Ok($name { $($field,)* _body: ::std::marker::PhantomData })
                    }
                }
                d.deserialize_map(V(::std::marker::PhantomData))
            }
        }
    };
}

pub(crate) use object;
