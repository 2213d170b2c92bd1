//! The `USER` of a RUN step in the form ns-run resolves. Docker's `USER` takes the forms of
//! runc's `GetExecUser`, where an empty user part is uid 0 and an empty group part is the
//! implicit form (the user's primary group, plus its supplementary groups): `:staff` runs as
//! `0:staff`, `app:` as `app`, `:` as `0`.

use std::borrow::Cow;

/// `spec` with an empty user part spelled `0` and an empty group part dropped.
pub fn normalize(spec: &str) -> Cow<'_, str> {
    match spec.split_once(':') {
        Some(("", "")) => Cow::Borrowed("0"),
        Some(("", g)) => Cow::Owned(format!("0:{g}")),
        Some((u, "")) => Cow::Borrowed(u),
        _ => Cow::Borrowed(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_parts_take_runc_defaults() {
        assert_eq!(normalize(":staff"), "0:staff");
        assert_eq!(normalize("app:"), "app");
        assert_eq!(normalize(":"), "0");
        assert_eq!(normalize("app:staff"), "app:staff");
        assert_eq!(normalize("1000"), "1000");
        assert!(matches!(normalize("app"), Cow::Borrowed("app")));
    }
}
