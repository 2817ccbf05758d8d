//! Value readers for the TOML loader: each takes a field, checks its type and value, reports what
//! is wrong (and what would be valid) into the context, and returns the typed value when it is
//! usable.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use strait_engine::config::{check_name, parse_duration, parse_size};
use toml::de::DeValue;

use super::cursor::{Ctx, Field, Span};

/// A listener or cluster name: a string that passes `check_name`. Returns the string even when
/// `check_name` fails (after reporting it), so references to the name do not cascade.
pub(super) fn name(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<String> {
    let s = f.str(ctx, "a name (a string)")?;
    if let Err(e) = check_name(s) {
        f.error(ctx, e);
    }
    Some(s.to_owned())
}

/// A [`name`] that must not repeat one of `earlier`: a repeat is reported as
/// "duplicate {kind} name ..{scope}; first defined at line N". Returns the name either way (after
/// reporting), so references to it do not cascade.
pub(super) fn unique_name<'a>(
    ctx: &mut Ctx<'_>,
    f: &Field<'_, '_>,
    mut earlier: impl Iterator<Item = &'a (String, Span)>,
    kind: &str,
    scope: &str,
) -> Option<String> {
    let n = name(ctx, f)?;
    if let Some((_, first)) = earlier.find(|(o, _)| *o == n) {
        let (line, _) = ctx.line_col(first.start);
        f.error(
            ctx,
            format!("duplicate {kind} name {n:?}{scope}; first defined at line {line}"),
        );
    }
    Some(n)
}

/// A string naming one of an enum's values.
pub(super) fn choice<T>(
    ctx: &mut Ctx<'_>,
    f: &Field<'_, '_>,
    parse: fn(&str) -> Option<T>,
    valid: &str,
) -> Option<T> {
    pick(ctx, f, parse, valid, &[], |_| None)
}

/// Like [`choice`], and the message may carry a hint for a near miss (`hint`) or the closest of
/// the valid `names`.
pub(super) fn pick<T>(
    ctx: &mut Ctx<'_>,
    f: &Field<'_, '_>,
    parse: fn(&str) -> Option<T>,
    valid: &str,
    names: &[&'static str],
    hint: fn(&str) -> Option<&'static str>,
) -> Option<T> {
    let s = f.str(ctx, &format!("a string ({valid})"))?;
    if let Some(v) = parse(s) {
        return Some(v);
    }
    let mut message = format!("invalid value {s:?}; expected {valid}");
    let lower = s.trim().to_ascii_lowercase();
    if let Some(h) = hint(&lower) {
        message.push_str(&format!(" ({h})"));
    } else if lower != s && parse(&lower).is_some() {
        message.push_str(&format!(" (did you mean {lower:?}?)"));
    } else if let Some(near) = super::cursor::suggest(&lower, names) {
        message.push_str(&format!(" (did you mean {near:?}?)"));
    }
    f.error(ctx, message);
    None
}

pub(super) fn int_in(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, min: i128, max: i128) -> Option<i128> {
    let n = f.int(ctx)?;
    if (min..=max).contains(&n) {
        return Some(n);
    }
    if max == i128::from(u32::MAX) {
        f.error(ctx, format!("must be at least {min}, found {n}"));
    } else {
        f.error(ctx, format!("must be between {min} and {max}, found {n}"));
    }
    None
}

pub(super) fn duration(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, nonzero: bool) -> Option<Duration> {
    let s = f.str(
        ctx,
        "a duration string such as \"250ms\", \"5s\", \"2m\" or \"1h\" (units: ms, s, m, h)",
    )?;
    match parse_duration(s) {
        Ok(d) if nonzero && d.is_zero() => {
            f.error(ctx, format!("must be greater than 0, found {s:?}"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            f.error(ctx, e);
            None
        }
    }
}

/// A byte size, as a string with a unit (`"256KiB"`) or an integer number of bytes.
pub(super) fn size(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, min: u32, max: u32) -> Option<u32> {
    size_u64(ctx, f, min.into(), max.into()).and_then(|n| u32::try_from(n).ok())
}

/// [`size`] for sizes that may exceed 4GiB (request bodies); `max = u64::MAX` means no upper bound.
pub(super) fn size_u64(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, min: u64, max: u64) -> Option<u64> {
    let n: i128 = match f.value.get_ref() {
        DeValue::String(s) => match parse_size(s) {
            Ok(n) => n.into(),
            Err(e) => {
                f.error(ctx, e);
                return None;
            }
        },
        DeValue::Integer(_) => f.int(ctx)?,
        _ => {
            f.type_error(
                ctx,
                "a size such as \"256KiB\" or \"1MiB\", or a number of bytes",
            );
            return None;
        }
    };
    if let Ok(v) = u64::try_from(n) {
        if (min..=max).contains(&v) {
            return Some(v);
        }
    }
    let message = if max == u64::MAX {
        format!(
            "must be at least {} ({min} bytes), found {n} bytes",
            human_size(min)
        )
    } else {
        format!(
            "must be between {} and {} ({min} and {max} bytes), found {n} bytes",
            human_size(min),
            human_size(max)
        )
    };
    f.error(ctx, message);
    None
}

fn human_size(n: u64) -> String {
    const UNITS: [(u32, &str); 3] = [(30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if n >= 1 << shift && n & ((1 << shift) - 1) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

/// `true` or `false`.
pub(super) fn boolean(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<bool> {
    match f.value.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        _ => {
            f.type_error(ctx, "a boolean (true or false)");
            None
        }
    }
}

pub(super) fn address(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<SocketAddr> {
    let s = f.str(ctx, "an address string such as \"127.0.0.1:8080\"")?;
    if let Ok(a) = s.trim().parse::<SocketAddr>() {
        return Some(a);
    }
    let t = s.trim();
    let hint = match t.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => "an IPv6 address goes in brackets, followed by the port".to_owned(),
        Ok(IpAddr::V4(_)) => "the port is missing".to_owned(),
        Err(_) if t.starts_with('[') && t.ends_with(']') => "the port is missing".to_owned(),
        Err(_) => match t.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_err() => {
                format!("the port {port:?} is not a number from 0 to 65535")
            }
            Some(_) => "the host must be an IP address (host names are not resolved)".to_owned(),
            None => "expected an IP address and a port".to_owned(),
        },
    };
    f.error(
        ctx,
        format!("invalid address {s:?}: {hint}; write IP:port such as \"127.0.0.1:8080\" or \"[::1]:8080\""),
    );
    None
}
